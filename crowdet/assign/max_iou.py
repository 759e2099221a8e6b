"""Max-IoU assignment of priors to people, batched over images and aware of crowds.

Rules, for each image of the batch (G padded targets, A priors):

1. People are the targets with ``valid & ~ignore`` and a positive area. A zero-area person
   overlaps nothing, so it is excluded: no prior is ever assigned to it. Ignore regions are the
   targets with ``valid & ignore``.
2. Thresholds. Each prior takes its best person by IoU (the lowest index among equal IoUs):
   IoU >= ``pos_iou`` makes it positive for that person, IoU < ``neg_iou`` makes it
   ``BACKGROUND``, anything in between makes it ``IGNORE``.
3. Ignore regions. A prior that is not positive and whose intersection over its own area with
   some ignore region is > ``ignore_ioa`` is ``IGNORE``: never a negative.
4. Low-quality matches (``low_quality=True``): every person is learnt from at least one prior,
   even in crowds where several people share the same best prior: the people still without a
   positive prior take part in the rounds of ``crowdet.assign.common``, with its guarantee.

Max-IoU compares every prior with every person whatever its level, and uses neither the strides
of the priors nor the predictions. When the priors lie on grids (crowdet.assign.candidates), only
the (person, prior) pairs that can reach IoU ``neg_iou`` are computed, in windows of the grids:
the same assignment without the dense (B, G, A) IoU. Memory and blocks: see
``crowdet.assign.common``.
"""

from __future__ import annotations

import torch

from crowdet.assign.candidates import best_of_pairs, infer_grids, iou_pairs
from crowdet.assign.codes import BACKGROUND, IGNORE
from crowdet.assign.common import (
    all_background,
    assign_tensors,
    best_target,
    check_assign_inputs,
    check_max_elements,
    low_quality_rounds,
    mark_ignored,
)
from crowdet.errors import ConfigError
from crowdet.structures import AssignResult, Predictions, Priors, Targets

__all__ = ["MaxIoUAssigner"]


class MaxIoUAssigner:
    """Assign each prior of each image to a person, ``BACKGROUND`` or ``IGNORE``.

    Args:
        pos_iou: a prior whose best IoU with a person is >= this is positive.
        neg_iou: a prior whose best IoU with every person is < this is a negative.
        ignore_ioa: a prior covered by an ignore region over more than this fraction of its own
            area is never a negative.
        low_quality: give every person at least one positive prior (see the module docstring).
        max_elements: budget of (image, target, prior) entries per pairwise block.

    The defaults of these arguments are those of ``crowdet.config.MaxIoUAssignConfig``.
    """

    uses_predictions = False

    def __init__(
        self,
        pos_iou: float,
        neg_iou: float,
        ignore_ioa: float,
        low_quality: bool,
        max_elements: int,
    ):
        if not 0 <= neg_iou <= pos_iou <= 1 or pos_iou <= 0:
            raise ConfigError(
                f"max-IoU assigner needs 0 <= neg_iou <= pos_iou <= 1 and pos_iou > 0, "
                f"got neg_iou={neg_iou}, pos_iou={pos_iou}"
            )
        check_max_elements(max_elements)
        self.pos_iou, self.neg_iou, self.ignore_ioa = pos_iou, neg_iou, ignore_ioa
        self.low_quality, self.max_elements = low_quality, max_elements

    def __call__(
        self, priors: Priors, targets: Targets, predictions: Predictions | None = None
    ) -> AssignResult:
        """priors (A, 4), targets (B, G) -> AssignResult with matched (B, A) int64 on the device
        of the priors: the index g in [0, G) of a positive prior's person, else BACKGROUND (-1)
        or IGNORE (-2)."""
        check_assign_inputs(priors, targets, predictions)
        prior_boxes, people, regions, gt_boxes = assign_tensors(priors, targets)
        num_images, num_gt = people.shape
        num_priors = prior_boxes.shape[0]
        if num_images == 0 or num_gt == 0 or num_priors == 0:
            return AssignResult(all_background(num_images, num_priors, prior_boxes.device))
        grid = infer_grids(prior_boxes, list(priors.level_sizes))
        if grid is not None and self.neg_iou > 0:  # only the pairs of IoU >= neg_iou matter
            pairs = iou_pairs(grid, prior_boxes, gt_boxes, people, self.neg_iou, self.max_elements)
            max_iou, best_gt = best_of_pairs(pairs, num_images, num_priors)
        else:
            max_iou, best_gt = best_target(
                prior_boxes, gt_boxes, people, self.max_elements, over_prior=False
            )
        matched = self._threshold(max_iou, best_gt)
        mark_ignored(matched, prior_boxes, gt_boxes, regions, self.ignore_ioa, self.max_elements)
        if self.low_quality:
            low_quality_rounds(
                prior_boxes, gt_boxes, people, matched, max_iou, self.max_elements, grid
            )
        return AssignResult(matched)

    def _threshold(self, max_iou: torch.Tensor, best_gt: torch.Tensor) -> torch.Tensor:
        """Step 2 of the rules: (B, A) inputs -> matched (B, A) int64."""
        negative = torch.full_like(best_gt, BACKGROUND)
        matched = torch.where(max_iou < self.neg_iou, negative, torch.full_like(best_gt, IGNORE))
        return torch.where(max_iou >= self.pos_iou, best_gt, matched)
