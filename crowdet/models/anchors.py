"""Priors for dense heads, flattened in the order the heads flatten their outputs.

Order: level, then row y, then column x, then anchor (octave scale major, aspect ratio minor;
`order="ratio_major"`: the other way round, as torchvision's AnchorGenerator). An anchor at level
stride s has height `base_scale * s * octave` and width `height / ratio` (ratio = height / width:
people are about 2.4 times taller than wide); with `keep="area"` (torchvision, Detectron) its
area is `(base_scale * s * octave)**2` whatever the ratio. Anchors are centred on the cell
centres, `(x + center_offset) * s` (torchvision: offset 0, the cell's top-left corner). A head
that predicts from points (FCOS, YOLOX) has one prior per location: the stride-sized square
centred on its point (`point_priors`).
"""

from __future__ import annotations

import torch

from crowdet.structures import Priors


class AnchorGenerator:
    def __init__(
        self,
        strides: list[int],
        base_scale: float,
        octave_scales,
        aspect_ratios,
        order: str = "octave_major",
        keep: str = "height",
        center_offset: float = 0.5,
    ):
        self.strides = list(strides)
        self.base_scale = base_scale
        self.octave_scales = list(octave_scales)
        self.aspect_ratios = list(aspect_ratios)
        self.order, self.keep, self.center_offset = order, keep, center_offset
        self._cache: dict = {}

    @property
    def num_anchors(self) -> int:
        """Anchors per feature location."""
        return len(self.octave_scales) * len(self.aspect_ratios)

    def cell_anchors(self, stride: int) -> torch.Tensor:
        """(K, 4) anchors centred on (0, 0)."""
        pairs = [(o, r) for o in self.octave_scales for r in self.aspect_ratios]
        if self.order == "ratio_major":
            pairs = [(o, r) for r in self.aspect_ratios for o in self.octave_scales]
        rows = []
        for octave, ratio in pairs:
            size = self.base_scale * stride * octave
            h = size * ratio**0.5 if self.keep == "area" else size
            w = h / ratio
            rows.append([-w / 2, -h / 2, w / 2, h / 2])
        return torch.tensor(rows, dtype=torch.float32)

    def __call__(self, shapes: list[tuple[int, int]], device=None) -> Priors:
        """Feature map shapes [(H_l, W_l)] -> the priors: boxes (A, 4) xyxy in input pixels."""
        key = (tuple(shapes), str(device))
        if key not in self._cache:
            self._cache = {key: self._make(shapes, device)}
        return self._cache[key]

    def _make(self, shapes, device) -> Priors:
        out = []
        for (h, w), stride in zip(shapes, self.strides):
            ys = (torch.arange(h, dtype=torch.float32) + self.center_offset) * stride
            xs = (torch.arange(w, dtype=torch.float32) + self.center_offset) * stride
            cy, cx = torch.meshgrid(ys, xs, indexing="ij")
            centers = torch.stack([cx, cy, cx, cy], dim=-1).reshape(-1, 1, 4)
            out.append((centers + self.cell_anchors(stride)).reshape(-1, 4))
        sizes = self.level_sizes(shapes)
        strides = torch.cat([torch.full((n,), float(s)) for n, s in zip(sizes, self.strides)])
        return Priors(torch.cat(out).to(device), sizes, strides.to(device))

    def level_sizes(self, shapes: list[tuple[int, int]]) -> list[int]:
        """Priors per level, in the order of ``__call__``."""
        return [h * w * self.num_anchors for h, w in shapes]

    def num_priors(self, shapes: list[tuple[int, int]]) -> int:
        return sum(self.level_sizes(shapes))


def point_priors(strides: list[int]) -> AnchorGenerator:
    """Priors of a head that predicts from points: one per location, the stride-sized square
    centred on it (anchors of scale 1 and ratio 1), so IoU-based assigners and the coders see a
    box whose centre is the point and whose size is the stride."""
    return AnchorGenerator(strides, base_scale=1.0, octave_scales=[1.0], aspect_ratios=[1.0])


class SizedAnchorGenerator(AnchorGenerator):
    """Anchors of fixed sizes in pixels per level (YOLOv3's nine anchors, three per level):
    sizes[l] is the list of (width, height) of level l's anchors, in the order of `strides`."""

    def __init__(self, strides: list[int], sizes: list[list[tuple[float, float]]]):
        if len(sizes) != len(strides) or len({len(s) for s in sizes}) != 1:
            raise ValueError("SizedAnchorGenerator needs as many anchors at each of the levels")
        super().__init__(strides, base_scale=1.0, octave_scales=[1.0], aspect_ratios=[1.0])
        self.sizes = [[(float(w), float(h)) for w, h in level] for level in sizes]

    @property
    def num_anchors(self) -> int:
        return len(self.sizes[0])

    def cell_anchors(self, stride: int) -> torch.Tensor:
        level = self.sizes[self.strides.index(stride)]
        return torch.tensor([[-w / 2, -h / 2, w / 2, h / 2] for w, h in level])
