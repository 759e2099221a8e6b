"""PAFPN as YOLOX and YOLOv5 build it: a top-down then a bottom-up path of CSP blocks.

On backbone features C3, C4, C5 with c3, c4, c5 channels: top-down, C5 -> 1x1 conv to c4
(kept as the top lateral), 2x nearest upsampling, concatenation with C4, a CSP block to c4;
1x1 conv to c3 (kept), upsampling, concatenation with C3, a CSP block: P3 (c3). Bottom-up, a
stride-2 3x3 conv of P3, concatenation with the c3 lateral, a CSP block: P4 (c4); the same with
the c4 lateral: P5 (c5). CSP blocks have no shortcut and round(3 d) bottlenecks (d = depth
multiplier); the width multiplier is the backbone's (the channels follow its C3-C5). Outputs
fine to coarse, `out_channels` the backbone's (a list). Module names follow YOLOX's YOLOPAFPN.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from crowdet.config_base import FieldError, Variant
from crowdet.models.backbones.cspdarknet import PRESETS, blocks
from crowdet.models.csp import CSPLayer, csp_conv


class PAFPNConfig(Variant):
    name: Literal["pafpn"] = "pafpn"
    # a size preset (s, m, l, x: depth multipliers 0.33, 0.67, 1, 1.33) or null and depth_mult
    variant: Literal["s", "m", "l", "x"] | None = "s"
    depth_mult: float | None = Field(None, gt=0.0)  # bottlenecks x this (null: the preset's)

    def depth(self) -> float:
        if self.depth_mult is not None:
            return self.depth_mult
        if self.variant is None:
            raise FieldError("variant", "name a variant (s, m, l, x) or give depth_mult")
        return PRESETS[self.variant][0]


class PAFPN(nn.Module):
    def __init__(self, in_channels: list[int], in_strides: list[int], depth_mult: float):
        super().__init__()
        if len(in_channels) != 3:
            raise FieldError("name", f"needs 3 backbone levels, got {len(in_channels)}")
        c3, c4, c5 = in_channels
        n = blocks(3, depth_mult)
        self.lateral_conv0 = csp_conv(c5, c4, 1)
        self.C3_p4 = CSPLayer(2 * c4, c4, n, shortcut=False)
        self.reduce_conv1 = csp_conv(c4, c3, 1)
        self.C3_p3 = CSPLayer(2 * c3, c3, n, shortcut=False)
        self.bu_conv2 = csp_conv(c3, c3, 3, 2)
        self.C3_n3 = CSPLayer(2 * c3, c4, n, shortcut=False)
        self.bu_conv1 = csp_conv(c4, c4, 3, 2)
        self.C3_n4 = CSPLayer(2 * c4, c5, n, shortcut=False)
        self.out_channels = list(in_channels)
        self.out_strides = list(in_strides)

    @classmethod
    def from_config(cls, cfg: PAFPNConfig, in_channels: list[int], in_strides: list[int]) -> PAFPN:
        return cls(in_channels, in_strides, cfg.depth())

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """[C3, C4, C5] -> [P3, P4, P5], channels and strides as the inputs."""
        c3, c4, c5 = feats
        top5 = self.lateral_conv0(c5)
        x = self.C3_p4(torch.cat([F.interpolate(top5, size=c4.shape[-2:]), c4], dim=1))
        top4 = self.reduce_conv1(x)
        p3 = self.C3_p3(torch.cat([F.interpolate(top4, size=c3.shape[-2:]), c3], dim=1))
        p4 = self.C3_n3(torch.cat([self.bu_conv2(p3), top4], dim=1))
        p5 = self.C3_n4(torch.cat([self.bu_conv1(p4), top5], dim=1))
        return [p3, p4, p5]
