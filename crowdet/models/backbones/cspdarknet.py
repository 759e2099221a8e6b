"""CSPDarknet (YOLOv5 / YOLOX) with depth and width multipliers, as C3-C5.

A stem (YOLOX: `focus`, pixels of each 2x2 cell stacked into channels then a 3x3 conv; YOLOv5
v6: `conv`, one 6x6 stride-2 conv), then four stages, each a stride-2 3x3 conv and a CSP block
(crowdet.models.csp.CSPLayer); SPPF (max pools 5, 5, 5 in a row: the same as SPP with 5, 9, 13)
in the last stage. Every conv is conv + BatchNorm (eps 1e-3, momentum 0.03) + SiLU.
Channels: stem 64w, stages 128w, 256w, 512w, 1024w (w = width_mult); C3-C5 are the last three
stages (strides 8, 16, 32). Blocks per stage: round(d * n) (at least 1) for n = 3, 9, 9, 3
(`layout: yolox`: SPPF before the last CSP block, which has no shortcut) or 3, 6, 9, 3 (`layout:
yolov5`: SPPF after it). Module names follow YOLOX's CSPDarknet (`stem`, `dark2` ... `dark5`),
so its state dicts load as they are (crowdet.models.pretrained). Stages for `frozen_stages`:
stem, dark2 ... dark5.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from crowdet.config_base import Variant
from crowdet.models.backbones.base import Backbone
from crowdet.models.csp import SPPF, CSPLayer, csp_conv

# (depth_mult, width_mult) of the YOLOv5 / YOLOX sizes
PRESETS = {"s": (0.33, 0.50), "m": (0.67, 0.75), "l": (1.0, 1.0), "x": (1.33, 1.25)}
LAYOUT_BLOCKS = {"yolox": (3, 9, 9, 3), "yolov5": (3, 6, 9, 3)}


class CSPDarknetConfig(Variant):
    name: Literal["cspdarknet"] = "cspdarknet"
    # a size preset (s, m, l, x: depth / width multipliers 0.33 / 0.50, 0.67 / 0.75, 1 / 1,
    # 1.33 / 1.25), or null and explicit depth_mult / width_mult
    variant: Literal["s", "m", "l", "x"] | None = "s"
    depth_mult: float | None = Field(None, gt=0.0)  # blocks per stage x this (null: the preset's)
    width_mult: float | None = Field(None, gt=0.0)  # channels x this (null: the preset's)
    layout: Literal["yolox", "yolov5"] = "yolox"  # stage blocks and SPPF place, see above
    stem: Literal["focus", "conv"] = "focus"  # focus: YOLOX / YOLOv5 before v6; conv: YOLOv5 v6
    frozen_stages: int = Field(0, ge=0, le=5)  # stem and stages (0-5) not trained
    norm_eval: bool = False  # BatchNorm keeps its running statistics while training
    weights: str | None = None  # a local CSPDarknet state dict file (null: random init)
    rgb: bool = False  # YOLOX's weights were trained on BGR images

    @model_validator(mode="after")
    def _preset_or_multipliers(self):
        if self.variant is None and (self.depth_mult is None or self.width_mult is None):
            from crowdet.config_base import FieldError

            raise FieldError("variant", "name a variant (s, m, l, x) or give both multipliers")
        return self

    def multipliers(self) -> tuple[float, float]:
        """(depth_mult, width_mult): the explicit ones, else the preset's."""
        d, w = PRESETS[self.variant] if self.variant is not None else (None, None)
        return (self.depth_mult or d, self.width_mult or w)


class Focus(nn.Module):
    """Each 2x2 cell's four pixels stacked into channels (H, W halve), then a conv."""

    def __init__(self, cin: int, cout: int, k: int):
        super().__init__()
        self.conv = csp_conv(4 * cin, cout, k)

    def forward(self, x):
        tl, bl = x[..., ::2, ::2], x[..., 1::2, ::2]
        tr, br = x[..., ::2, 1::2], x[..., 1::2, 1::2]
        return self.conv(torch.cat([tl, bl, tr, br], dim=1))


def blocks(n: int, depth_mult: float) -> int:
    return max(round(n * depth_mult), 1)


class CSPDarknet(Backbone):
    def __init__(
        self,
        depth_mult: float,
        width_mult: float,
        layout: str,
        stem: str,
        frozen_stages: int,
        norm_eval: bool,
        rgb: bool,
    ):
        super().__init__()
        c = int(64 * width_mult)
        self.stem = Focus(3, c, 3) if stem == "focus" else csp_conv(3, c, 6, 2)
        n2, n3, n4, n5 = (blocks(n, depth_mult) for n in LAYOUT_BLOCKS[layout])
        self.dark2 = nn.Sequential(csp_conv(c, 2 * c, 3, 2), CSPLayer(2 * c, 2 * c, n2))
        self.dark3 = nn.Sequential(csp_conv(2 * c, 4 * c, 3, 2), CSPLayer(4 * c, 4 * c, n3))
        self.dark4 = nn.Sequential(csp_conv(4 * c, 8 * c, 3, 2), CSPLayer(8 * c, 8 * c, n4))
        down = csp_conv(8 * c, 16 * c, 3, 2)
        if layout == "yolox":
            last = [SPPF(16 * c, 16 * c), CSPLayer(16 * c, 16 * c, n5, shortcut=False)]
        else:
            last = [CSPLayer(16 * c, 16 * c, n5), SPPF(16 * c, 16 * c)]
        self.dark5 = nn.Sequential(down, *last)
        self.out_channels = [4 * c, 8 * c, 16 * c]
        self.out_strides = [8, 16, 32]
        self.input_rgb = rgb
        stages = [self.stem, self.dark2, self.dark3, self.dark4, self.dark5]
        self.freeze(stages, frozen_stages, norm_eval)

    @classmethod
    def from_config(cls, cfg: CSPDarknetConfig) -> CSPDarknet:
        d, w = cfg.multipliers()
        return cls(d, w, cfg.layout, cfg.stem, cfg.frozen_stages, cfg.norm_eval, cfg.rgb)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> [C3 (B, 256w, H/8, W/8), C4 (B, 512w, ...), C5 (B, 1024w, ...)]."""
        c3 = self.dark3(self.dark2(self.stem(x)))
        c4 = self.dark4(c3)
        return [c3, c4, self.dark5(c4)]
