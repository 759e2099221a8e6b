"""Box coders: how a head's box regression encodes a box against its prior.

A head owns its coder (`head.coder`); the loss and the post-processing ask it, so a head that
regresses boxes another way brings its coder along. Both take priors (..., 4) xyxy (the
`Priors.boxes` the regression belongs to) and boxes or regression (..., 4) of the same shape.
"""

from __future__ import annotations

import torch

from crowdet import boxes as B

_OFFSET_EPS = 1e-4  # YOLO offsets stay this far inside the cell when encoded


class DeltaCoder:
    """Anchor deltas (dx, dy, dw, dh), as torchvision's BoxCoder: the centre offset in anchor
    widths / heights and the log size ratio, each multiplied by its weight (RetinaNet: 1s)."""

    def __init__(self, weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)):
        self.weights = tuple(weights)

    def encode(self, priors: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        return B.encode(priors, boxes, self.weights)

    def decode(self, priors: torch.Tensor, regression: torch.Tensor) -> torch.Tensor:
        return B.decode(priors, regression, self.weights)


class PointDistanceCoder:
    """Distances (left, top, right, bottom) from a point to the sides of its box, as FCOS: the
    point is the prior's centre and the distances are in units of the prior's size (a point
    prior is its stride-sized square, so the unit is the stride: FCOS's normalised targets).
    The head makes its distances non-negative (e.g. exp or ReLU); decode takes them as given."""

    def encode(self, priors: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        centre, unit = _centre_and_unit(priors)
        return torch.cat([centre - boxes[..., :2], boxes[..., 2:] - centre], dim=-1) / unit

    def decode(self, priors: torch.Tensor, regression: torch.Tensor) -> torch.Tensor:
        centre, unit = _centre_and_unit(priors)
        d = regression * unit
        return torch.cat([centre - d[..., :2], centre + d[..., 2:]], dim=-1)


def _centre_and_unit(priors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., 2) centres and (..., 4) sizes (w, h, w, h) of priors (..., 4)."""
    centre = (priors[..., :2] + priors[..., 2:]) / 2
    wh = (priors[..., 2:] - priors[..., :2]).clamp(min=B.EPS)
    return centre, torch.cat([wh, wh], dim=-1)


class YoloCoder:
    """YOLOv3's encoding against an anchor prior (the anchor's box on its cell's centre): the
    centre as sigmoid offsets within the cell, (sigmoid(tx) - 0.5) x stride from the cell's
    centre, and the size as the log ratio to the anchor's, w = anchor_w x exp(tw).

    The cell side is the stride of the prior's level; a prior is told by its anchor size, so
    the coder holds each anchor's size and stride: anchors (K, 2) widths and heights, all
    distinct, strides (K,)."""

    def __init__(self, anchors: list[tuple[float, float]], strides: list[float]):
        sizes = {tuple(map(float, wh)) for wh in anchors}
        if len(sizes) != len(anchors) or len(anchors) != len(strides):
            raise ValueError("YoloCoder needs distinct anchor sizes, one stride each")
        self.log_sizes = torch.tensor(anchors, dtype=torch.float32).log()
        self.strides = torch.tensor(strides, dtype=torch.float32)

    def cell(self, priors: torch.Tensor) -> torch.Tensor:
        """The stride (...) of each prior (..., 4), found by its anchor size."""
        wh = (priors[..., 2:] - priors[..., :2]).clamp(min=B.EPS).log()
        gap = (wh[..., None, :] - self.log_sizes.to(wh)).abs().sum(dim=-1)
        return self.strides.to(wh)[gap.argmin(dim=-1)]

    def encode(self, priors: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        centre, wh = _centre_size(priors)
        box_centre, box_wh = _centre_size(boxes)
        offset = (box_centre - centre) / self.cell(priors)[..., None] + 0.5
        offset = offset.clamp(_OFFSET_EPS, 1 - _OFFSET_EPS)
        size = (box_wh.clamp(min=B.EPS) / wh.clamp(min=B.EPS)).log()
        return torch.cat([torch.logit(offset), size], dim=-1)

    def decode(self, priors: torch.Tensor, regression: torch.Tensor) -> torch.Tensor:
        centre, wh = _centre_size(priors)
        cell = self.cell(priors)[..., None]
        c = centre + (regression[..., :2].sigmoid() - 0.5) * cell
        size = wh * regression[..., 2:].clamp(max=B.MAX_LOG_SCALE).exp()
        return torch.cat([c - size / 2, c + size / 2], dim=-1)


def _centre_size(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return (boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]
