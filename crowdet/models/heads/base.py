"""What a dense detector needs of its head (crowdet.models.detector.DenseDetector).

A head is an nn.Module whose `forward(feats)` takes the pyramid features (fine to coarse) and
returns a crowdet.structures.HeadOutput flattened over levels; `priors(shapes, device)` gives
the crowdet.structures.Priors its outputs belong to, in the same order; `coder` encodes and
decodes its box regression against those priors (crowdet.models.coders). The loss and the
post-processing reach boxes only through the coder; `scores(outputs)` gives the detection scores
the post-processing ranks (by default the sigmoid of the class logits; FCOS folds in its
centerness, YOLO heads their objectness).

A head variant is one file: its config model (a crowdet.config_base.Variant), the head, and a
`from_config(cfg, in_channels, strides, num_classes, anchors)` builder; plus one row in
crowdet.models.build.HEADS.
"""

from __future__ import annotations

import torch
from torch import nn

from crowdet.models.anchors import AnchorGenerator
from crowdet.structures import HeadOutput, Priors


class DenseHead(nn.Module):
    """The crowd extras a head may offer (crowdet.losses.extras, crowdet.postprocess.suppress):
    `visible` (HeadOutput.second_box is the visible box of the full box's person), `density`
    (HeadOutput.density) and `instances` K > 1 (each prior predicts K people: its outputs come
    K per prior, the priors repeated K times in a row, trained by crowdet.losses.emd)."""

    visible: bool = False
    density: bool = False
    instances: int = 1

    def __init__(self, prior_generator: AnchorGenerator, coder):
        super().__init__()
        self.prior_generator = prior_generator  # feature shapes -> Priors
        self.coder = coder  # encode(priors, boxes), decode(priors, regression)

    def priors(self, shapes: list[tuple[int, int]], device: torch.device | None = None) -> Priors:
        """Feature map shapes [(H_l, W_l)] -> the priors of this head's outputs (each repeated
        `instances` times in a row)."""
        priors = self.prior_generator(shapes, device=device)
        k = self.instances
        if k == 1:
            return priors
        strides = None if priors.strides is None else priors.strides.repeat_interleave(k)
        boxes = priors.boxes.repeat_interleave(k, dim=0)
        return Priors(boxes, [n * k for n in priors.level_sizes], strides)

    def scores(self, outputs: HeadOutput) -> torch.Tensor:
        """The detection score of each prior and class (B, A, C) in [0, 1]."""
        return outputs.cls_logits.sigmoid()


def flatten_level(x: torch.Tensor, last: int) -> torch.Tensor:
    """One level's output map (B, K*last, H, W) -> (B, H*W*K, last): location (row, column)
    major, the K priors of a location minor, as the prior generators order them."""
    b, _, h, w = x.shape
    return x.view(b, -1, last, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, last)


def per_level(in_channels: int | list[int], num_levels: int) -> list[int]:
    """The input channels of each level: one number for all (an FPN) or one per level."""
    if isinstance(in_channels, int):
        return [in_channels] * num_levels
    if len(in_channels) != num_levels:
        raise ValueError(f"{len(in_channels)} input channels for {num_levels} levels")
    return list(in_channels)
