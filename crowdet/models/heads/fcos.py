"""FCOS head (Tian et al., ICCV 2019) as torchvision builds it: a classification tower and a box
tower shared across levels (3x3 conv, GroupNorm, ReLU), class logits from the first, ReLU'd
distances (left, top, right, bottom) in strides and a quality logit from the second.

One point prior per location (crowdet.models.anchors.point_priors), distances coded by
PointDistanceCoder. The quality branch predicts FCOS's centerness (`quality: centerness`) or the
IoU of the predicted box with its person (`quality: iou`); detection scores are
sqrt(class probability x quality probability), as FCOS ranks its detections.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from crowdet.config import AnchorConfig
from crowdet.config_base import Variant
from crowdet.models.anchors import point_priors
from crowdet.models.coders import PointDistanceCoder
from crowdet.models.heads.base import DenseHead, flatten_level
from crowdet.structures import HeadOutput


class FCOSHeadConfig(Variant):
    name: Literal["fcos"] = "fcos"
    convs: int = Field(4, ge=0)  # conv layers in each of the cls / box towers
    # tower width; null: the neck's channels (torchvision's FCOS), else a 1x1 conv reduces first
    channels: int | None = Field(None, ge=1)
    prior_prob: float = Field(0.01, gt=0.0, lt=1.0)  # initial foreground probability (bias init)
    norm: Literal["gn", "none"] = "gn"  # GroupNorm (32 groups, or fewer for narrow towers)
    quality: Literal["centerness", "iou"] = "centerness"  # what the quality branch predicts
    # initial distance (strides) of each box side: the bias of the distance conv. torchvision
    # starts at 0; a box of zero area gets no gradient from an IoU loss and narrow towers then
    # never leave it (measured on tiny_fcos.yaml: the ReLU'd distances die within 40 steps)
    box_init: float = Field(1.0, ge=0.0)


def tower(channels: int, convs: int, norm: str) -> nn.Sequential:
    """convs x (3x3 conv, norm, ReLU), laid out as torchvision's FCOS towers."""
    layers: list[nn.Module] = []
    for _ in range(convs):
        layers.append(nn.Conv2d(channels, channels, 3, padding=1))
        layers.append(
            nn.GroupNorm(math.gcd(32, channels), channels) if norm == "gn" else nn.Identity()
        )
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class FCOSHead(DenseHead):
    def __init__(
        self,
        in_channels: int,
        strides: list[int],
        num_classes: int,
        convs: int,
        channels: int,
        prior_prob: float,
        norm: str,
        quality: str,
        box_init: float,
    ):
        """Towers of `channels` shared by the levels of `strides`. No defaults here: a config's
        come from FCOSHeadConfig."""
        super().__init__(point_priors(strides), PointDistanceCoder())
        self.num_classes, self.quality = num_classes, quality
        self.reduce = (
            nn.Identity() if in_channels == channels else nn.Conv2d(in_channels, channels, 1)
        )
        self.cls_tower = tower(channels, convs, norm)
        self.box_tower = tower(channels, convs, norm)
        self.cls_out = nn.Conv2d(channels, num_classes, 3, padding=1)
        self.box_out = nn.Conv2d(channels, 4, 3, padding=1)
        self.quality_out = nn.Conv2d(channels, 1, 3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)
        nn.init.constant_(self.cls_out.bias, -math.log((1 - prior_prob) / prior_prob))
        nn.init.constant_(self.box_out.bias, box_init)

    @classmethod
    def from_config(
        cls,
        cfg: FCOSHeadConfig,
        in_channels: int,
        strides: list[int],
        num_classes: int,
        anchors: AnchorConfig,
    ) -> FCOSHead:
        """model.anchors does not apply: one point per location."""
        channels = in_channels if cfg.channels is None else cfg.channels
        return cls(
            in_channels, strides, num_classes, cfg.convs, channels, cfg.prior_prob, cfg.norm,
            cfg.quality, cfg.box_init,
        )  # fmt: skip

    def forward(self, feats: list[torch.Tensor]) -> HeadOutput:
        """Pyramid features -> cls_logits (B, A, C), box_regression (B, A, 4) distances in
        strides, and centerness or iou_quality (B, A, 1) logits."""
        cls, box, quality = [], [], []
        for x in feats:
            x = self.reduce(x)
            cls.append(flatten_level(self.cls_out(self.cls_tower(x)), self.num_classes))
            b = self.box_tower(x)
            box.append(flatten_level(F.relu(self.box_out(b)), 4))
            quality.append(flatten_level(self.quality_out(b), 1))
        extra = {self._quality_field(): torch.cat(quality, dim=1)}
        return HeadOutput(torch.cat(cls, dim=1), torch.cat(box, dim=1), **extra)

    def _quality_field(self) -> str:
        return "centerness" if self.quality == "centerness" else "iou_quality"

    def scores(self, outputs: HeadOutput) -> torch.Tensor:
        """sqrt(class probability x quality probability) (B, A, C)."""
        quality = getattr(outputs, self._quality_field())
        return (outputs.cls_logits.sigmoid() * quality.sigmoid()).sqrt()
