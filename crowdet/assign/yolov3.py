"""YOLOv3 assignment (Redmon and Farhadi, 2018): one anchor per person, batched over the images,
plus the ignore threshold on objectness, aware of ignore regions.

Rules, for each image of the batch (anchor priors: K anchors of fixed sizes at each cell of each
level; the cell of a prior is the stride-sized square around its centre):

1. People are the targets with ``valid & ~ignore`` and a positive area; ignore regions are the
   targets with ``valid & ignore``.
2. A person's candidates are the priors whose cell holds the person's box centre (cells are
   half-open, [x0, x1) x [y0, y1): one cell per level); its positive is the candidate whose
   anchor shape best matches the box: the highest IoU of the two sizes placed on the same
   centre (the lowest prior index on ties). This is YOLOv3's best anchor of all the levels.
3. A prior chosen by several people goes to the one of highest shape IoU (then the lowest
   person index); the others are left without a positive until rule 6.
4. Ignore threshold: a prior that is not positive and whose predicted box overlaps some person
   of its image with IoU > ``ignore_iou`` is ``IGNORE`` (not a negative for objectness).
5. Ignore regions: a prior that is not positive and whose anchor box's intersection over its
   own area with some ignore region is > ``ignore_ioa`` is ``IGNORE``. Every other prior is
   ``BACKGROUND``.
6. Low-quality matches (``low_quality=True``): people without a positive (a centre outside
   every cell, or a lost contest) take one in the rounds of ``crowdet.assign.common``.

No loop over images or people: candidates are found on blocks of at most ``max_elements``
(person, prior) entries (crowdet.assign.pairs), the predicted boxes' IoUs on blocks of as many
(image, target, prior) entries.
"""

from __future__ import annotations

import torch

from crowdet import boxes as box_ops
from crowdet.assign.codes import IGNORE
from crowdet.assign.common import (
    check_max_elements,
    low_quality_rounds,
    mark_ignored,
    start_assignment,
)
from crowdet.assign.pairs import (
    batch_people,
    candidate_pairs,
    max_iou_of_predictions,
    settle_contests,
)
from crowdet.errors import ConfigError
from crowdet.structures import AssignResult, Predictions, Priors, Targets

__all__ = ["YOLOv3Assigner", "shape_iou"]


class YOLOv3Assigner:
    """Assign each anchor prior of each image to a person, ``BACKGROUND`` or ``IGNORE``.

    Args:
        ignore_iou: a prior whose predicted box overlaps a person above this IoU is not a
            negative (YOLOv3: 0.5; CrowdHuman recipes use 0.7).
        ignore_ioa: a prior covered by an ignore region over more than this fraction of its
            anchor box is never a negative.
        low_quality: give every person at least one positive prior.
        max_elements: budget of entries per block.

    The defaults are those of ``crowdet.config.YOLOv3AssignConfig``.
    """

    uses_predictions = True

    def __init__(self, ignore_iou: float, ignore_ioa: float, low_quality: bool, max_elements: int):
        if not 0.0 < ignore_iou <= 1.0:
            raise ConfigError(f"YOLOv3 assigner needs 0 < ignore_iou <= 1, got {ignore_iou}")
        check_max_elements(max_elements)
        self.ignore_iou, self.ignore_ioa = ignore_iou, ignore_ioa
        self.low_quality, self.max_elements = low_quality, max_elements

    def __call__(
        self, priors: Priors, targets: Targets, predictions: Predictions | None = None
    ) -> AssignResult:
        """priors (A, 4) with strides, targets (B, G), predictions (for rule 4; None: no ignore
        threshold) -> AssignResult with matched (B, A) int64."""
        prior_boxes, people, regions, gt_boxes, matched, empty = start_assignment(
            priors, targets, predictions, needs_strides="the YOLOv3 assigner"
        )
        if empty:
            return AssignResult(matched)
        num_priors = matched.shape[1]
        image, person, boxes = batch_people(people, gt_boxes)
        k, a = _cell_candidates(prior_boxes, priors.strides.to(prior_boxes), boxes, self)
        fit = shape_iou(boxes[k], prior_boxes[a])
        best = settle_contests(k, fit, a, largest=True)  # each person's best anchor
        k, a, fit = k[best], a[best], fit[best]
        won = settle_contests(image[k] * num_priors + a, fit, person[k], largest=True)
        k, a = k[won], a[won]
        matched[image[k], a] = person[k]
        if predictions is not None:
            pred = predictions.boxes.to(prior_boxes)
            near = max_iou_of_predictions(pred, gt_boxes, people, self.max_elements)
            matched.masked_fill_((near > self.ignore_iou) & (matched < 0), IGNORE)
        mark_ignored(matched, prior_boxes, gt_boxes, regions, self.ignore_ioa, self.max_elements)
        if self.low_quality:
            iou = torch.full(matched.shape, -1.0, dtype=prior_boxes.dtype, device=a.device)
            iou[image[k], a] = box_ops.paired_iou(boxes[k], prior_boxes[a])
            low_quality_rounds(prior_boxes, gt_boxes, people, matched, iou, self.max_elements)
        return AssignResult(matched)


def _cell_candidates(prior_boxes, strides, boxes, assigner):
    """Rule 2's candidates: (person k, prior a) pairs whose cell holds the person's centre."""
    half = strides[:, None] / 2
    centres = (prior_boxes[:, :2] + prior_boxes[:, 2:]) / 2
    low, high = centres - half, centres + half  # (A, 2) the cells
    person_centres = (boxes[:, :2] + boxes[:, 2:]) / 2

    def keep(rows: slice) -> torch.Tensor:
        c = person_centres[rows, None, :]
        return ((c >= low) & (c < high)).all(dim=-1)

    n, m = len(boxes), len(prior_boxes)
    return candidate_pairs(n, m, assigner.max_elements, keep, prior_boxes.device)


def shape_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of the sizes of boxes a and b (..., 4), both placed on the same centre -> (...)."""
    wh_a, wh_b = a[..., 2:] - a[..., :2], b[..., 2:] - b[..., :2]
    inter = torch.minimum(wh_a, wh_b).clamp(min=0).prod(dim=-1)
    union = wh_a.clamp(min=0).prod(dim=-1) + wh_b.clamp(min=0).prod(dim=-1) - inter
    return inter / (union + box_ops.EPS)
