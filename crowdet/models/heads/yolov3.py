"""YOLOv3 head (Redmon and Farhadi, 2018): per level a 3x3 conv (BatchNorm, LeakyReLU 0.1) and a
1x1 conv predicting, for each of its K anchors, the box (tx, ty, tw, th), the objectness and the
class logits (Darknet's layout, K x (5 + C) channels).

Anchor priors of fixed sizes in pixels, `anchors` of the head's config split evenly over the
levels in order (fine to coarse: YOLOv3's nine COCO anchors give three per level); boxes are
coded by YoloCoder (sigmoid offsets within the cell, log size against the anchor). Detection
scores are class x objectness probability.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from crowdet.config import AnchorConfig
from crowdet.config_base import FieldError, Positive, Variant
from crowdet.models.anchors import SizedAnchorGenerator
from crowdet.models.coders import YoloCoder
from crowdet.models.heads.base import DenseHead, flatten_level, per_level
from crowdet.structures import HeadOutput

# YOLOv3's nine anchors (width, height in pixels at a 416-px input), fine to coarse
COCO_ANCHORS = [
    (10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119), (116, 90), (156, 198), (373, 326),
]  # fmt: skip

Size = Annotated[list[Positive], Field(min_length=2, max_length=2)]


class YOLOv3HeadConfig(Variant):
    name: Literal["yolov3"] = "yolov3"
    # anchor (width, height) in input pixels, split evenly over the levels, fine to coarse
    anchors: list[Size] = Field([list(a) for a in COCO_ANCHORS], min_length=1)
    # width of each level's 3x3 conv; null: twice the level's input channels (YOLOv3)
    channels: list[Annotated[int, Field(ge=1)]] | None = None
    prior_prob: float = Field(0.01, gt=0.0, lt=1.0)  # initial class / objectness probability


class YOLOv3Head(DenseHead):
    def __init__(
        self,
        in_channels: list[int],
        strides: list[int],
        num_classes: int,
        anchors: list[list[tuple[float, float]]],
        channels: list[int],
        prior_prob: float,
    ):
        """anchors[l]: the (w, h) of level l's anchors (as many at each level); channels[l]: the
        width of level l's 3x3 conv. No defaults here: a config's come from YOLOv3HeadConfig."""
        generator = SizedAnchorGenerator(strides, anchors)
        flat = [wh for level in anchors for wh in level]
        cell = [float(s) for s, level in zip(strides, anchors) for _ in level]
        super().__init__(generator, YoloCoder(flat, cell))
        self.num_classes, self.num_anchors = num_classes, generator.num_anchors
        self.attributes = 5 + num_classes
        self.bridges = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(cin, c, 3, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.LeakyReLU(0.1, inplace=True),
            )
            for cin, c in zip(in_channels, channels)
        )
        self.preds = nn.ModuleList(
            nn.Conv2d(c, self.num_anchors * self.attributes, 1) for c in channels
        )
        bias = -math.log((1 - prior_prob) / prior_prob)
        for pred in self.preds:
            nn.init.normal_(pred.weight, std=0.01)
            b = pred.bias.detach().view(self.num_anchors, self.attributes)
            b.zero_()
            b[:, 4:] = bias  # objectness and classes start at prior_prob

    @classmethod
    def from_config(
        cls,
        cfg: YOLOv3HeadConfig,
        in_channels: int | list[int],
        strides: list[int],
        num_classes: int,
        anchors: AnchorConfig,
    ) -> YOLOv3Head:
        """model.anchors does not apply: the head's own `anchors` (pixels) do."""
        num_levels = len(strides)
        sizes = [tuple(a) for a in cfg.anchors]
        if len(sizes) % num_levels:
            raise FieldError(
                "anchors", f"{len(sizes)} anchors cannot be split evenly over {num_levels} levels"
            )
        if len(set(sizes)) != len(sizes):
            raise FieldError("anchors", "anchor sizes must be distinct")
        per = len(sizes) // num_levels
        levels = [sizes[i * per : (i + 1) * per] for i in range(num_levels)]
        cin = per_level(in_channels, num_levels)
        width = [2 * c for c in cin] if cfg.channels is None else list(cfg.channels)
        if len(width) != num_levels:
            raise FieldError("channels", f"{len(width)} widths for {num_levels} levels")
        return cls(cin, strides, num_classes, levels, width, cfg.prior_prob)

    def forward(self, feats: list[torch.Tensor]) -> HeadOutput:
        """Pyramid features -> cls_logits (B, A, C), box_regression (B, A, 4) YoloCoder codes,
        objectness (B, A, 1) logits."""
        out = torch.cat(
            [
                flatten_level(pred(bridge(x)), self.attributes)
                for bridge, pred, x in zip(self.bridges, self.preds, feats)
            ],
            dim=1,
        )
        return HeadOutput(out[..., 5:], out[..., :4], objectness=out[..., 4:5])

    def scores(self, outputs: HeadOutput) -> torch.Tensor:
        """Class probability x objectness probability (B, A, C)."""
        return outputs.cls_logits.sigmoid() * outputs.objectness.sigmoid()
