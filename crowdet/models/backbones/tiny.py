"""A small plain-conv backbone for CPU training: 3x3 conv-BN-ReLU stages, ResNet basic blocks.

Output strides 8, 16, 32 (C3, C4, C5) with 4w, 8w, 16w channels for width w.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from crowdet.config_base import Variant
from crowdet.models.layers import BasicBlock, conv_bn_act


class TinyBackboneConfig(Variant):
    name: Literal["tiny"] = "tiny"
    width: int = Field(16, ge=1)  # channels of the first stage
    depth: int = Field(1, ge=0)  # extra blocks per stage
    frozen_stages: int = Field(0, ge=0)  # stages whose weights are not trained


class TinyBackbone(nn.Module):
    def __init__(self, width: int, depth: int, frozen_stages: int):
        super().__init__()
        w = width
        self.stem = nn.Sequential(conv_bn_act(3, w, stride=2), conv_bn_act(w, 2 * w, stride=2))
        self.stages = nn.ModuleList(
            nn.Sequential(
                conv_bn_act(cin, cout, stride=2), *[BasicBlock(cout) for _ in range(depth)]
            )
            for cin, cout in ((2 * w, 4 * w), (4 * w, 8 * w), (8 * w, 16 * w))
        )
        self.out_channels = [4 * w, 8 * w, 16 * w]
        self.out_strides = [8, 16, 32]
        for module in [self.stem, *self.stages][:frozen_stages]:
            module.requires_grad_(False)

    @classmethod
    def from_config(cls, cfg: TinyBackboneConfig) -> TinyBackbone:
        return cls(cfg.width, cfg.depth, cfg.frozen_stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> [C3 (B, 4w, H/8, W/8), C4, C5]."""
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats
