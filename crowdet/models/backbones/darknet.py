"""Darknet-53 (Redmon & Farhadi 2018, YOLOv3), the trunk without its classifier, as C3-C5.

A 3x3 conv (32 channels), then five stages, each a stride-2 3x3 conv doubling the channels and
1, 2, 8, 8, 4 residual blocks (1x1 conv to half the channels, 3x3 conv back, added to the
input). Every conv is conv + BatchNorm + LeakyReLU(0.1). Outputs: the last three stages, strides
8, 16, 32 with 256, 512, 1024 channels. Module names follow mmdetection's Darknet (`conv1`,
`conv_res_block1` ... with `conv` and `res0`, `res1` ...), so its converted Darknet-53 state
dicts load as they are. Stages for `frozen_stages`: conv1, then conv_res_block1 ... 5.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from crowdet.config_base import Variant
from crowdet.models.backbones.base import Backbone
from crowdet.models.layers import ConvBNAct

BLOCKS = (1, 2, 8, 8, 4)  # residual blocks per stage
CHANNELS = (64, 128, 256, 512, 1024)  # channels per stage


class Darknet53Config(Variant):
    name: Literal["darknet53"] = "darknet53"
    frozen_stages: int = Field(0, ge=0, le=6)  # conv1 and stages (0-6) not trained
    norm_eval: bool = False  # BatchNorm keeps its running statistics while training
    weights: str | None = None  # a local Darknet-53 state dict file (null: random init)
    rgb: bool = True  # the network sees RGB (as the Darknet ImageNet weights were trained)


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> ConvBNAct:
    return ConvBNAct(cin, cout, k, stride, nn.LeakyReLU(0.1, inplace=True))


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = _conv(channels, channels // 2, 1)
        self.conv2 = _conv(channels // 2, channels, 3)

    def forward(self, x):
        return x + self.conv2(self.conv1(x))


class Darknet53(Backbone):
    def __init__(self, frozen_stages: int, norm_eval: bool, rgb: bool):
        super().__init__()
        self.conv1 = _conv(3, 32, 3)
        cin = 32
        for i, (blocks, cout) in enumerate(zip(BLOCKS, CHANNELS)):
            stage = nn.Sequential()
            stage.add_module("conv", _conv(cin, cout, 3, stride=2))
            for j in range(blocks):
                stage.add_module(f"res{j}", ResBlock(cout))
            self.add_module(f"conv_res_block{i + 1}", stage)
            cin = cout
        self.out_channels = list(CHANNELS[2:])
        self.out_strides = [8, 16, 32]
        self.input_rgb = rgb
        self.freeze([self.conv1, *self.stages()], frozen_stages, norm_eval)

    def stages(self) -> list[nn.Module]:
        return [getattr(self, f"conv_res_block{i + 1}") for i in range(len(BLOCKS))]

    @classmethod
    def from_config(cls, cfg: Darknet53Config) -> Darknet53:
        return cls(cfg.frozen_stages, cfg.norm_eval, cfg.rgb)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> [C3 (B, 256, H/8, W/8), C4 (B, 512, H/16, W/16), C5 (B, 1024, ...)]."""
        x = self.conv1(x)
        feats = []
        for stage in self.stages():
            x = stage(x)
            feats.append(x)
        return feats[2:]
