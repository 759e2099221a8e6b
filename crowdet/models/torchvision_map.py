"""torchvision's RetinaNet / FCOS state dict keys as crowdet's DenseDetector names them.

crowdet's RetinaNet-R50-FPN (resnet 50 + fpn P3-P7 with extra_from p5 + a retina head with 4
convs, 256 channels, norm none) has torchvision's `retinanet_resnet50_fpn` architecture; with
these names its weights (and the backbone + FPN of `fcos_resnet50_fpn`) load as they are.
"""

from __future__ import annotations

import torch

RULES = [
    ("backbone.body.", "backbone."),
    ("backbone.fpn.inner_blocks.", "neck.lateral."),
    ("backbone.fpn.layer_blocks.", "neck.output."),
    ("backbone.fpn.extra_blocks.p6.", "neck.extra.0."),
    ("backbone.fpn.extra_blocks.p7.", "neck.extra.1."),
    ("head.classification_head.conv.", "head.cls_tower.convs."),
    ("head.classification_head.cls_logits.", "head.cls_out."),
    ("head.regression_head.conv.", "head.box_tower.convs."),
    ("head.regression_head.bbox_reg.", "head.box_out."),
]
# torchvision wraps each of these convs in a Sequential (`inner_blocks.0.0.weight`)
WRAPPED = ("neck.lateral.", "neck.output.", "head.cls_tower.", "head.box_tower.")


def crowdet_key(key: str) -> str | None:
    """A torchvision RetinaNet / FCOS key -> crowdet's (None: no counterpart)."""
    for old, new in RULES:
        if key.startswith(old):
            key = new + key[len(old) :]
            parts = key.split(".")
            if key.startswith(WRAPPED):
                parts.pop(-2)
            return ".".join(parts)
    return None


def crowdet_state(tv_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors of a torchvision RetinaNet / FCOS state dict that crowdet has, renamed."""
    out = {}
    for k, v in tv_state.items():
        name = crowdet_key(k)
        if name is not None:
            out[name] = v
    return out
