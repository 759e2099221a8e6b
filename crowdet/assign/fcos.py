"""FCOS assignment (Tian et al., ICCV 2019) of point priors, batched and crowd-aware.

Rules, for each image of the batch (point priors: the stride-sized square around each point of
each pyramid level; their strides are needed):

1. People are the targets with ``valid & ~ignore`` and a positive area; ignore regions are the
   targets with ``valid & ignore`` (as in the other assigners).
2. A point is a candidate for a person when it lies strictly inside the person's box and, with
   ``radius > 0`` (centre sampling), within ``radius`` strides of the box centre along both axes
   (|point - centre| < radius * stride, as torchvision's FCOS).
3. Scale ranges: the largest of the point's four distances to the box sides must lie strictly
   between the lower and the upper bound of the point's level. The bounds between consecutive
   levels are ``scale_bounds`` (one fewer than the levels, in pixels); None: 8 x the stride of
   the lower level (FCOS's 64 / 128 / 256 / 512 on P3-P7). The first level has no lower bound,
   the last no upper bound.
4. A point that is a candidate for several people goes to the one of smallest area (the lowest
   person index on ties). Every other point is ``BACKGROUND``.
5. Ignore regions: a point that is not positive and whose square's intersection over its own
   area with some ignore region is > ``ignore_ioa`` is ``IGNORE``.
6. Low-quality matches (``low_quality=True``): people left without a positive point (too small
   for any point, outside every scale range, or losing every contest of rule 4) take one in the
   rounds of ``crowdet.assign.common``.

No loop over images or people: the candidate pairs of the whole batch are found on blocks of at
most ``max_elements`` (person, prior) entries (crowdet.assign.pairs).
"""

from __future__ import annotations

import torch

from crowdet import boxes as box_ops
from crowdet.assign.common import (
    check_max_elements,
    low_quality_rounds,
    mark_ignored,
    start_assignment,
)
from crowdet.assign.pairs import batch_people, candidate_pairs, settle_contests
from crowdet.errors import ConfigError
from crowdet.structures import AssignResult, Predictions, Priors, Targets

__all__ = ["FCOSAssigner", "level_bounds"]


class FCOSAssigner:
    """Assign each point prior of each image to a person, ``BACKGROUND`` or ``IGNORE``.

    Args:
        radius: centre sampling radius in strides (0: any point inside the box).
        scale_bounds: the bounds between consecutive levels in pixels, or None (8 x stride).
        ignore_ioa: a point whose square is covered by an ignore region over more than this
            fraction of its area is never a negative.
        low_quality: give every person at least one positive point.
        max_elements: budget of (person, prior) entries per block.

    The defaults are those of ``crowdet.config.FCOSAssignConfig``.
    """

    uses_predictions = False

    def __init__(
        self,
        radius: float,
        scale_bounds: list[float] | None,
        ignore_ioa: float,
        low_quality: bool,
        max_elements: int,
    ):
        if radius < 0:
            raise ConfigError(f"FCOS assigner needs radius >= 0, got {radius}")
        check_max_elements(max_elements)
        self.radius, self.ignore_ioa = radius, ignore_ioa
        self.scale_bounds = None if scale_bounds is None else list(scale_bounds)
        self.low_quality, self.max_elements = low_quality, max_elements

    def __call__(
        self, priors: Priors, targets: Targets, predictions: Predictions | None = None
    ) -> AssignResult:
        """priors (A, 4) with strides, targets (B, G) -> AssignResult with matched (B, A) int64:
        the index g of a positive point's person, else BACKGROUND (-1) or IGNORE (-2)."""
        prior_boxes, people, regions, gt_boxes, matched, empty = start_assignment(
            priors, targets, predictions, needs_strides="the FCOS assigner"
        )
        if empty:
            return AssignResult(matched)
        num_priors = matched.shape[1]
        image, person, boxes = batch_people(people, gt_boxes)
        strides = priors.strides.to(prior_boxes)
        low, high = level_bounds(priors.level_sizes, strides, self.scale_bounds)
        points = (prior_boxes[:, :2] + prior_boxes[:, 2:]) / 2

        def keep(rows: slice) -> torch.Tensor:
            return self._candidates(points, strides, low, high, boxes[rows])

        k, a = candidate_pairs(len(boxes), num_priors, self.max_elements, keep, points.device)
        slot = image[k] * num_priors + a
        won = settle_contests(slot, box_ops.area(boxes[k]), person[k], largest=False)
        k, a = k[won], a[won]
        matched[image[k], a] = person[k]
        mark_ignored(matched, prior_boxes, gt_boxes, regions, self.ignore_ioa, self.max_elements)
        if self.low_quality:
            iou = torch.full(matched.shape, -1.0, dtype=prior_boxes.dtype, device=points.device)
            iou[image[k], a] = box_ops.paired_iou(boxes[k], prior_boxes[a])
            low_quality_rounds(prior_boxes, gt_boxes, people, matched, iou, self.max_elements)
        return AssignResult(matched)

    def _candidates(self, points, strides, low, high, boxes) -> torch.Tensor:
        """Rules 2 and 3: points (A, 2), strides / low / high (A,), boxes (n, 4) -> (n, A)."""
        p, b = points[None], boxes[:, None, :]
        sides = torch.cat([p - b[..., :2], b[..., 2:] - p], dim=-1)  # (n, A, 4) l, t, r, b
        keep = sides.amin(dim=-1) > 0
        reach = sides.amax(dim=-1)
        keep &= (reach > low) & (reach < high)
        if self.radius > 0:
            centre = (b[..., :2] + b[..., 2:]) / 2
            keep &= (p - centre).abs().amax(dim=-1) < self.radius * strides
        return keep


def level_bounds(level_sizes: list[int], strides: torch.Tensor, bounds: list[float] | None):
    """Per prior (A,), the lower and upper bound of its level's scale range (rule 3)."""
    num_levels = len(level_sizes)
    starts = torch.tensor([0, *level_sizes[:-1]]).cumsum(0).tolist()
    level_strides = [float(strides[s]) if n else 0.0 for s, n in zip(starts, level_sizes)]
    if bounds is None:
        bounds = [8.0 * s for s in level_strides[:-1]]
    elif len(bounds) != num_levels - 1:
        raise ValueError(
            f"assign.scale_bounds has {len(bounds)} bounds for {num_levels} pyramid levels: "
            f"give one fewer than the levels (the bounds between consecutive levels)"
        )
    edges = [0.0, *bounds, float("inf")]
    lows = [torch.full((n,), edges[i]) for i, n in enumerate(level_sizes)]
    highs = [torch.full((n,), edges[i + 1]) for i, n in enumerate(level_sizes)]
    return torch.cat(lows).to(strides), torch.cat(highs).to(strides)
