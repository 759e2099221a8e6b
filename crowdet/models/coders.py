"""Box coders: how a head's box regression encodes a box against its prior.

A head owns its coder (`head.coder`); the loss and the post-processing ask it, so a head that
regresses boxes another way brings its coder along. Both take priors (..., 4) xyxy (the
`Priors.boxes` the regression belongs to) and boxes or regression (..., 4) of the same shape.
"""

from __future__ import annotations

import torch

from crowdet import boxes as B


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
