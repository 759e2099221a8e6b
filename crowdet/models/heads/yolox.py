"""YOLOX head (Ge et al., 2021): decoupled and anchor-free, one set of layers per level.

Each level: a 1x1 stem to `channels`, then a classification branch and a regression branch of
two 3x3 convs each (conv, BatchNorm, SiLU); class logits from the first, box regression and
objectness from the second. One point prior per location (the stride-sized square), the box
as DeltaCoder deltas against it: the centre offset and the log size in strides, as YOLOX's
(x + grid) x stride and exp(w) x stride. Detection scores are class x objectness probability.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from crowdet.config import AnchorConfig
from crowdet.config_base import Variant
from crowdet.models.anchors import point_priors
from crowdet.models.coders import DeltaCoder
from crowdet.models.heads.base import DenseHead, flatten_level, per_level
from crowdet.structures import HeadOutput


class YOLOXHeadConfig(Variant):
    name: Literal["yolox"] = "yolox"
    channels: int = Field(256, ge=1)  # branch width (YOLOX: 256 x width multiplier, s: 128)
    prior_prob: float = Field(0.01, gt=0.0, lt=1.0)  # initial class / objectness probability


def conv_bn_silu(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout, eps=1e-3, momentum=0.03),
        nn.SiLU(inplace=True),
    )


class YOLOXLevel(nn.Module):
    """The layers of one level: stem, two branches, three outputs."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, bias: float):
        super().__init__()
        self.stem = conv_bn_silu(in_channels, channels, 1)
        self.cls_convs = nn.Sequential(*(conv_bn_silu(channels, channels, 3) for _ in range(2)))
        self.reg_convs = nn.Sequential(*(conv_bn_silu(channels, channels, 3) for _ in range(2)))
        self.cls_pred = nn.Conv2d(channels, num_classes, 1)
        self.reg_pred = nn.Conv2d(channels, 4, 1)
        self.obj_pred = nn.Conv2d(channels, 1, 1)
        for conv in (self.cls_pred, self.obj_pred):
            nn.init.constant_(conv.bias, bias)

    def forward(self, x: torch.Tensor):
        x = self.stem(x)
        reg = self.reg_convs(x)
        return self.cls_pred(self.cls_convs(x)), self.reg_pred(reg), self.obj_pred(reg)


class YOLOXHead(DenseHead):
    def __init__(
        self,
        in_channels: list[int],
        strides: list[int],
        num_classes: int,
        channels: int,
        prior_prob: float,
    ):
        """One YOLOXLevel per level of `strides`, on inputs of `in_channels` (one per level).
        No defaults here: a config's come from YOLOXHeadConfig."""
        super().__init__(point_priors(strides), DeltaCoder())
        self.num_classes = num_classes
        bias = -math.log((1 - prior_prob) / prior_prob)
        self.levels = nn.ModuleList(YOLOXLevel(c, channels, num_classes, bias) for c in in_channels)

    @classmethod
    def from_config(
        cls,
        cfg: YOLOXHeadConfig,
        in_channels: int | list[int],
        strides: list[int],
        num_classes: int,
        anchors: AnchorConfig,
    ) -> YOLOXHead:
        """model.anchors does not apply: one point per location."""
        return cls(
            per_level(in_channels, len(strides)), strides, num_classes, cfg.channels,
            cfg.prior_prob,
        )  # fmt: skip

    def forward(self, feats: list[torch.Tensor]) -> HeadOutput:
        """Pyramid features -> cls_logits (B, A, C), box_regression (B, A, 4) deltas,
        objectness (B, A, 1) logits."""
        cls, box, obj = [], [], []
        for level, x in zip(self.levels, feats):
            c, b, o = level(x)
            cls.append(flatten_level(c, self.num_classes))
            box.append(flatten_level(b, 4))
            obj.append(flatten_level(o, 1))
        cat = (torch.cat(t, dim=1) for t in (cls, box, obj))
        cls_logits, box_regression, objectness = cat
        return HeadOutput(cls_logits, box_regression, objectness=objectness)

    def scores(self, outputs: HeadOutput) -> torch.Tensor:
        """Class probability x objectness probability (B, A, C)."""
        return outputs.cls_logits.sigmoid() * outputs.objectness.sigmoid()
