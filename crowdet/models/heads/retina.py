"""RetinaNet-style dense head: a classification and a box tower shared across levels.

Conv weights are shared across pyramid levels; with `norm="bn"` each level has its own BatchNorm
(statistics differ per level). Outputs are flattened to (B, A, C) and (B, A, 4) in the order of
its anchors (crowdet.models.anchors.AnchorGenerator); boxes are anchor deltas (DeltaCoder).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from crowdet.config import AnchorConfig
from crowdet.config_base import Variant
from crowdet.models.anchors import AnchorGenerator
from crowdet.models.coders import DeltaCoder
from crowdet.models.heads.base import DenseHead, flatten_level
from crowdet.structures import HeadOutput


class RetinaHeadConfig(Variant):
    name: Literal["retina"] = "retina"
    convs: int = Field(2, ge=0)  # conv layers in each of the cls / box towers
    channels: int = Field(64, ge=1)  # tower width
    prior_prob: float = Field(0.01, gt=0.0, lt=1.0)  # initial foreground probability (bias init)
    norm: Literal["bn", "gn", "none"] = "bn"  # normalisation inside the towers
    # crowd extras (crowdet.models.heads.base.DenseHead): also predict each person's visible box
    # from the box tower (postprocess.nms: visible); a density branch on the box tower, each
    # person's largest IoU with another person (postprocess.nms: adaptive); K people per prior
    # (CrowdDet's multiple instance prediction, EMD loss; postprocess.nms: set)
    visible: bool = False
    density: bool = False
    instances: int = Field(1, ge=1, le=4)


class Tower(nn.Module):
    def __init__(self, channels: int, convs: int, num_levels: int, norm: str):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, padding=1, bias=norm == "none") for _ in range(convs)
        )
        self.norms = nn.ModuleList(
            nn.ModuleList(_norm(norm, channels) for _ in range(convs)) for _ in range(num_levels)
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, level: int) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms[level]):
            x = self.act(norm(conv(x)))
        return x


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "gn":
        return nn.GroupNorm(min(32, channels // 4), channels)
    return nn.Identity()


class RetinaHead(DenseHead):
    def __init__(
        self,
        in_channels: int,
        anchors: AnchorGenerator,
        num_classes: int,
        convs: int,
        channels: int,
        prior_prob: float,
        norm: str,
        visible: bool,
        density: bool,
        instances: int,
    ):
        """One tower pair for the levels of `anchors` (their strides), `anchors.num_anchors`
        anchors per location (each predicting `instances` people); visible / density: the extra
        outputs on the box tower. No defaults for the tower: a config's come from
        RetinaHeadConfig."""
        super().__init__(anchors, DeltaCoder())
        num_levels, num_anchors = len(anchors.strides), anchors.num_anchors * instances
        self.num_classes, self.num_anchors = num_classes, num_anchors
        self.visible, self.density, self.instances = visible, density, instances
        self.reduce = (
            nn.Identity() if in_channels == channels else nn.Conv2d(in_channels, channels, 1)
        )
        self.cls_tower = Tower(channels, convs, num_levels, norm)
        self.box_tower = Tower(channels, convs, num_levels, norm)
        self.cls_out = nn.Conv2d(channels, num_anchors * num_classes, 3, padding=1)
        self.box_out = nn.Conv2d(channels, num_anchors * 4, 3, padding=1)
        out = lambda n: nn.Conv2d(channels, num_anchors * n, 3, padding=1)  # noqa: E731
        self.visible_out = out(4) if visible else None
        self.density_out = out(1) if density else None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.constant_(self.cls_out.bias, -math.log((1 - prior_prob) / prior_prob))

    @classmethod
    def from_config(
        cls,
        cfg: RetinaHeadConfig,
        in_channels: int,
        strides: list[int],
        num_classes: int,
        anchors: AnchorConfig,
    ) -> RetinaHead:
        a = anchors
        generator = AnchorGenerator(
            strides,
            a.base_scale,
            a.octave_scales,
            a.aspect_ratios,
            order=a.order,
            keep=a.keep,
            center_offset=a.center_offset,
        )
        return cls(
            in_channels, generator, num_classes, cfg.convs, cfg.channels, cfg.prior_prob, cfg.norm,
            cfg.visible, cfg.density, cfg.instances,
        )  # fmt: skip

    def forward(self, feats: list[torch.Tensor]) -> HeadOutput:
        """Pyramid features -> cls_logits (B, A, C), box_regression (B, A, 4) anchor deltas, and
        the extras asked for: second_box (B, A, 4) visible-box deltas, density (B, A, 1)."""
        cls, box, vis, dens = [], [], [], []
        for level, x in enumerate(feats):
            x = self.reduce(x)
            cls.append(flatten_level(self.cls_out(self.cls_tower(x, level)), self.num_classes))
            t = self.box_tower(x, level)
            box.append(flatten_level(self.box_out(t), 4))
            if self.visible_out is not None:
                vis.append(flatten_level(self.visible_out(t), 4))
            if self.density_out is not None:
                dens.append(flatten_level(self.density_out(t), 1))
        return HeadOutput(
            torch.cat(cls, dim=1),
            torch.cat(box, dim=1),
            second_box=torch.cat(vis, dim=1) if vis else None,
            density=torch.cat(dens, dim=1) if dens else None,
        )
