"""Feature pyramid network (Lin et al. 2017) producing P3..P7 as configured.

Levels above the backbone's last one are made by stride-2 3x3 convs, the first on P5 (FCOS,
torchvision's RetinaNet) or on C5 (the RetinaNet paper, mmdetection's RetinaNet) as `extra_from`
says, each later one on the ReLU of the level below.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from crowdet.config_base import FieldError, Variant


class FPNConfig(Variant):
    name: Literal["fpn"] = "fpn"
    channels: int = Field(64, ge=1)  # output channels of every pyramid level
    # pyramid levels Pk, stride 2**k: at least one, increasing
    levels: list[Annotated[int, Field(ge=1, le=10)]] = Field([3, 4, 5, 6], min_length=1)

    @field_validator("levels")
    @classmethod
    def _increasing(cls, v):
        if any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError(f"must be increasing with no repeats, got {v}")
        return v

    # what the first level above the backbone's last one is made from: p5 (the top pyramid
    # output) or c5 (the backbone's top feature)
    extra_from: Literal["p5", "c5"] = "p5"


def check_levels(levels: list[int], in_levels: list[int]) -> None:
    """FieldError (key `levels`) unless `levels` can be built from backbone levels `in_levels`:
    at least one backbone level, no level the backbone lacks, and levels above the backbone's
    last one contiguous (each extra level is one stride-2 conv on the one below)."""
    top = in_levels[-1]
    low = [lvl for lvl in levels if lvl <= top]
    missing = [lvl for lvl in low if lvl not in in_levels]
    extra = [lvl for lvl in levels if lvl > top]
    if not low or missing or extra != list(range(top + 1, top + 1 + len(extra))):
        raise FieldError(
            "levels",
            f"levels {list(levels)} cannot be built on backbone levels {in_levels}: use at least "
            f"one of {in_levels}, then levels {top + 1}, {top + 2}, ... in a row",
        )


class FPN(nn.Module):
    def __init__(
        self,
        in_channels: list[int],
        in_strides: list[int],
        channels: int,
        levels: list[int],
        extra_from: str,
    ):
        super().__init__()
        in_levels = [s.bit_length() - 1 for s in in_strides]
        check_levels(levels, in_levels)
        self.levels = list(levels)
        self.used = [i for i, lvl in enumerate(in_levels) if lvl in levels]
        self.lateral = nn.ModuleList(nn.Conv2d(in_channels[i], channels, 1) for i in self.used)
        self.output = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in self.used)
        top = in_levels[-1]
        extra = [lvl for lvl in levels if lvl > top]
        if extra and extra_from == "p5" and top not in levels:
            raise FieldError(
                "levels",
                f"levels {list(levels)}: level {top + 1} is made from P{top} (extra_from p5), "
                f"so {top} must be one of the levels (or set extra_from: c5)",
            )
        self.extra_from = extra_from
        first = in_channels[-1] if extra_from == "c5" else channels
        self.extra = nn.ModuleList(
            nn.Conv2d(first if i == 0 else channels, channels, 3, stride=2, padding=1)
            for i in range(len(extra))
        )
        self.out_channels = channels
        self.out_strides = [2**lvl for lvl in levels]

    @classmethod
    def from_config(cls, cfg: FPNConfig, in_channels: list[int], in_strides: list[int]) -> FPN:
        return cls(in_channels, in_strides, cfg.channels, cfg.levels, cfg.extra_from)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Backbone features (fine to coarse) -> pyramid features, one per configured level."""
        xs = [feats[i] for i in self.used]
        lat = [conv(x) for conv, x in zip(self.lateral, xs)]
        for i in range(len(lat) - 1, 0, -1):
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[-2:])
        outs = [conv(x) for conv, x in zip(self.output, lat)]
        for i, conv in enumerate(self.extra):
            if i > 0:
                x = F.relu(outs[-1])
            else:
                x = feats[-1] if self.extra_from == "c5" else outs[-1]
            outs.append(conv(x))
        return outs
