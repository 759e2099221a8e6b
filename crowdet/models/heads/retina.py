"""RetinaNet-style dense head: a classification and a box tower shared across levels.

Conv weights are shared across pyramid levels; with `norm="bn"` each level has its own BatchNorm
(statistics differ per level). Outputs are flattened to (B, A, C) and (B, A, 4) in the order of
crowdet.models.anchors.AnchorGenerator.
"""

from __future__ import annotations

import math

import torch
from torch import nn


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


class RetinaHead(nn.Module):
    def __init__(
        self,
        in_channels: int,
        num_anchors: int,
        num_classes: int = 1,
        num_levels: int = 5,
        convs: int = 4,
        channels: int = 256,
        prior_prob: float = 0.01,
        norm: str = "gn",
    ):
        super().__init__()
        self.num_classes, self.num_anchors = num_classes, num_anchors
        self.reduce = (
            nn.Identity() if in_channels == channels else nn.Conv2d(in_channels, channels, 1)
        )
        self.cls_tower = Tower(channels, convs, num_levels, norm)
        self.box_tower = Tower(channels, convs, num_levels, norm)
        self.cls_out = nn.Conv2d(channels, num_anchors * num_classes, 3, padding=1)
        self.box_out = nn.Conv2d(channels, num_anchors * 4, 3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.constant_(self.cls_out.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Pyramid features -> cls_logits (B, A, C), box_deltas (B, A, 4)."""
        cls, box = [], []
        for level, x in enumerate(feats):
            x = self.reduce(x)
            cls.append(_flatten(self.cls_out(self.cls_tower(x, level)), self.num_classes))
            box.append(_flatten(self.box_out(self.box_tower(x, level)), 4))
        return torch.cat(cls, dim=1), torch.cat(box, dim=1)


def _flatten(x: torch.Tensor, last: int) -> torch.Tensor:
    """(B, K*last, H, W) -> (B, H*W*K, last)."""
    b, _, h, w = x.shape
    return x.view(b, -1, last, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, last)
