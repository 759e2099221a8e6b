"""Necks: FPN's extra levels from P5 (the default, as before) or C5; the YOLOv3 neck's top-down
path and PAFPN's top-down + bottom-up paths, seen through which inputs each output depends on."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from crowdet.config import load_config
from crowdet.errors import ConfigError
from crowdet.models.build import NECKS, build_detector
from crowdet.models.necks.fpn import FPN
from crowdet.models.necks.pafpn import PAFPN
from crowdet.models.necks.yolov3 import YOLOv3Neck

FEATS = [(8, 16, 12), (16, 8, 6), (32, 4, 3)]  # (channels, H, W) of C3, C4, C5


def features(batch: int = 2) -> list[torch.Tensor]:
    return [torch.randn(batch, c, h, w, requires_grad=True) for c, h, w in FEATS]


@pytest.mark.parametrize("extra_from", ["p5", "c5"])
def test_fpn_extra_levels_by_hand(extra_from):
    torch.manual_seed(0)
    fpn = FPN([8, 16, 32], [8, 16, 32], 6, [3, 4, 5, 6, 7], extra_from)
    feats = features()
    outs = fpn(feats)
    p5 = outs[2]
    p6 = fpn.extra[0](feats[2] if extra_from == "c5" else p5)
    torch.testing.assert_close(outs[3], p6)
    torch.testing.assert_close(outs[4], fpn.extra[1](F.relu(p6)))
    assert fpn.extra[0].in_channels == (32 if extra_from == "c5" else 6)


def test_the_demo_neck_is_unchanged():
    """configs/demo.yaml names no extra_from: P6 from P5, as before the key existed."""
    cfg = load_config("configs/demo.yaml")
    assert cfg.model.neck.extra_from == "p5"
    neck = build_detector(cfg).neck
    assert [c.in_channels for c in neck.extra] == [48]


def depends(outputs: list[torch.Tensor], feats: list[torch.Tensor]) -> list[list[bool]]:
    """[i][j]: output i depends on input feature j (a non-zero gradient)."""
    rows = []
    for out in outputs:
        grads = torch.autograd.grad(out.sum(), feats, retain_graph=True, allow_unused=True)
        rows.append([g is not None and bool(g.abs().sum() > 0) for g in grads])
    return rows


def test_yolov3_neck_is_top_down_only():
    torch.manual_seed(0)
    neck = YOLOv3Neck([8, 16, 32], [8, 16, 32], [4, 8, 16]).train()
    feats = features()
    outs = neck(feats)
    assert [tuple(o.shape) for o in outs] == [(2, 4, 16, 12), (2, 8, 8, 6), (2, 16, 4, 3)]
    # P3 sees everything, P4 sees C4 and C5, P5 only C5
    assert depends(outs, feats) == [[True, True, True], [False, True, True], [False, False, True]]


def test_yolov3_neck_channels_default_to_half_the_backbones():
    cfg = load_config(None, ["model.neck={name: yolov3}"])
    neck = NECKS["yolov3"][1](cfg.model.neck, [256, 512, 1024], [8, 16, 32])
    assert neck.out_channels == [128, 256, 512] and neck.out_strides == [8, 16, 32]


def test_pafpn_has_a_bottom_up_path():
    torch.manual_seed(0)
    neck = PAFPN([8, 16, 32], [8, 16, 32], 0.33).train()
    feats = features()
    outs = neck(feats)
    assert [tuple(o.shape) for o in outs] == [(2, 8, 16, 12), (2, 16, 8, 6), (2, 32, 4, 3)]
    assert depends(outs, feats) == [[True] * 3] * 3  # P5 sees C3 through the bottom-up path
    assert len(neck.C3_p4.m) == 1 and len(PAFPN([8, 16, 32], [8, 16, 32], 1.0).C3_p4.m) == 3


@pytest.mark.parametrize("neck", ["yolov3", "pafpn"])
def test_a_two_level_backbone_is_refused_naming_the_key(neck):
    cfg = load_config(None, [f"model.neck={{name: {neck}}}"])
    with pytest.raises(ConfigError, match="model.neck.name: needs 3 backbone levels"):
        from crowdet.models.build import _build

        _build(NECKS, cfg.model.neck, "model.neck", [8, 16], [8, 16])


def test_a_level_made_from_p5_needs_p5():
    with pytest.raises(ConfigError, match="model.neck.levels: levels \\[3, 4, 6\\]: level 6"):
        build_detector(load_config(None, ["model.neck.levels=[3, 4, 6]"]))
    fpn = FPN([8, 16, 32], [8, 16, 32], 6, [3, 4, 6], "c5")  # from C5: stride 64 as named
    assert [o.shape[-1] for o in fpn(features())] == [12, 6, 2]
