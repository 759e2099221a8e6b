"""The YOLOv3 neck (Redmon & Farhadi 2018): top-down, upsample + concatenate, three levels.

On C5: a detection block (five convs alternating 1x1 to c and 3x3 to 2c, ending at c channels)
gives P5. For P4 (then P3): a 1x1 conv of the level above to the level's channels, 2x nearest
upsampling, concatenation with the backbone feature, and a detection block. Every conv is conv +
BatchNorm + LeakyReLU(0.1). Outputs P3, P4, P5 (fine to coarse) with `out_channels` (a list:
by default half each backbone level's channels, 128, 256, 512 on Darknet-53), strides of the
backbone. Module names follow mmdetection's YOLOV3Neck (`detect1` on C5, `conv1`, `detect2`,
`conv2`, `detect3`).
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from crowdet.config_base import FieldError, Variant
from crowdet.models.layers import ConvBNAct


class YOLOv3NeckConfig(Variant):
    name: Literal["yolov3"] = "yolov3"
    # output channels of P3, P4, P5 (null: half the backbone's C3, C4, C5 channels)
    channels: list[Annotated[int, Field(ge=1)]] | None = Field(None, min_length=3, max_length=3)


def _conv(cin: int, cout: int, k: int) -> ConvBNAct:
    return ConvBNAct(cin, cout, k, 1, nn.LeakyReLU(0.1, inplace=True))


class DetectionBlock(nn.Sequential):
    """Five convs: 1x1 to c, 3x3 to 2c, 1x1 to c, 3x3 to 2c, 1x1 to c."""

    def __init__(self, cin: int, c: int):
        super().__init__()
        for i, (a, b, k) in enumerate(
            [(cin, c, 1), (c, 2 * c, 3), (2 * c, c, 1), (c, 2 * c, 3), (2 * c, c, 1)]
        ):
            self.add_module(f"conv{i + 1}", _conv(a, b, k))


class YOLOv3Neck(nn.Module):
    def __init__(self, in_channels: list[int], in_strides: list[int], channels: list[int]):
        super().__init__()
        if len(in_channels) != 3:
            raise FieldError("name", f"needs 3 backbone levels, got {len(in_channels)}")
        c3, c4, c5 = channels
        self.detect1 = DetectionBlock(in_channels[2], c5)
        self.conv1 = _conv(c5, c4, 1)
        self.detect2 = DetectionBlock(in_channels[1] + c4, c4)
        self.conv2 = _conv(c4, c3, 1)
        self.detect3 = DetectionBlock(in_channels[0] + c3, c3)
        self.out_channels = list(channels)
        self.out_strides = list(in_strides)

    @classmethod
    def from_config(
        cls, cfg: YOLOv3NeckConfig, in_channels: list[int], in_strides: list[int]
    ) -> YOLOv3Neck:
        channels = cfg.channels or [c // 2 for c in in_channels]
        return cls(in_channels, in_strides, channels)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """[C3, C4, C5] -> [P3, P4, P5] with out_channels."""
        c3, c4, c5 = feats
        p5 = self.detect1(c5)
        up = F.interpolate(self.conv1(p5), size=c4.shape[-2:])
        p4 = self.detect2(torch.cat([up, c4], dim=1))
        up = F.interpolate(self.conv2(p4), size=c3.shape[-2:])
        p3 = self.detect3(torch.cat([up, c3], dim=1))
        return [p3, p4, p5]
