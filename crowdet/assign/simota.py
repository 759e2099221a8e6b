"""SimOTA (Ge et al., "YOLOX", 2021): dynamic assignment by the current predictions, batched over
the images with padded people and aware of ignore regions.

Rules, for each image of the batch (point priors with their strides; the detached predictions:
scores (B, A, C) and decoded boxes (B, A, 4)):

1. People are the targets with ``valid & ~ignore`` and a positive area; ignore regions are the
   targets with ``valid & ignore``.
2. Centre prior: a person's candidates are the points within ``center_radius`` strides of its
   box centre along both axes (|point - centre| < radius * stride, YOLOX's geometry constraint).
   Only candidates enter the costs: a point outside a person's centre region is never its
   positive (YOLOX gives such pairs a cost of 1e6, so they could only enter when a person's
   dynamic k exceeded its candidates; here that person keeps fewer positives instead).
3. Cost of a (person, candidate) pair: the binary cross-entropy of the candidate's predicted
   person score against 1, plus ``iou_weight`` x -log(IoU + 1e-8) of its predicted box with the
   person's box.
4. Dynamic k: k = max(1, int(sum of the person's ``candidate_topk`` highest candidate IoUs)),
   truncated as YOLOX does; the person takes its k candidates of lowest cost (all of them when
   it has fewer; on equal costs the lower prior index first).
5. A point taken by several people goes to the one of lowest cost (then the lowest index).
6. Ignore regions: a point that is not positive and whose square's intersection over its own
   area with some ignore region is > ``ignore_ioa`` is ``IGNORE``. Every other point is
   ``BACKGROUND``.
7. Low-quality matches (``low_quality=True``): people left without a positive point (no point
   in their centre region, or every candidate lost to others) take one in the rounds of
   ``crowdet.assign.common``.

``soft_targets`` (B, A): for each positive point, the IoU of its predicted box with its person
(YOLOX's class target). No loop over images or people: the candidate pairs of the whole batch
are found on blocks of at most ``max_elements`` (person, prior) entries; ranks within a person
come from sorts (crowdet.postprocess.groups.rank_in_group).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from crowdet import boxes as box_ops
from crowdet.assign.common import (
    check_max_elements,
    low_quality_rounds,
    mark_ignored,
    start_assignment,
)
from crowdet.assign.pairs import batch_people, candidate_pairs, settle_contests
from crowdet.errors import ConfigError
from crowdet.postprocess.groups import rank_in_group
from crowdet.structures import AssignResult, Predictions, Priors, Targets

__all__ = ["SimOTAAssigner"]


class SimOTAAssigner:
    """Assign each point prior of each image to a person, ``BACKGROUND`` or ``IGNORE``, from the
    current predictions.

    Args:
        center_radius: the centre prior's half side, in strides.
        candidate_topk: how many of a person's best candidate IoUs sum to its dynamic k.
        iou_weight: weight of the IoU cost against the classification cost.
        ignore_ioa: a point covered by an ignore region over more than this fraction of its
            square is never a negative.
        low_quality: give every person at least one positive point.
        max_elements: budget of (person, prior) entries per block.

    The defaults are those of ``crowdet.config.SimOTAAssignConfig``.
    """

    uses_predictions = True

    def __init__(
        self,
        center_radius: float,
        candidate_topk: int,
        iou_weight: float,
        ignore_ioa: float,
        low_quality: bool,
        max_elements: int,
    ):
        if center_radius <= 0 or candidate_topk < 1:
            raise ConfigError(
                f"SimOTA needs center_radius > 0 and candidate_topk >= 1, got "
                f"center_radius={center_radius}, candidate_topk={candidate_topk}"
            )
        check_max_elements(max_elements)
        self.center_radius, self.candidate_topk = center_radius, candidate_topk
        self.iou_weight, self.ignore_ioa = iou_weight, ignore_ioa
        self.low_quality, self.max_elements = low_quality, max_elements

    def __call__(
        self, priors: Priors, targets: Targets, predictions: Predictions | None = None
    ) -> AssignResult:
        """priors (A, 4) with strides, targets (B, G), predictions -> AssignResult: matched
        (B, A) int64 and soft_targets (B, A), the IoU of each positive's prediction."""
        prior_boxes, people, regions, gt_boxes, matched, empty = start_assignment(
            priors, targets, predictions, needs_strides="SimOTA"
        )
        soft = torch.zeros(matched.shape, dtype=prior_boxes.dtype, device=matched.device)
        if empty:
            return AssignResult(matched, soft_targets=soft)
        num_priors = matched.shape[1]
        if predictions is None:
            raise ValueError("SimOTA ranks priors by the predictions: none were given")
        image, person, boxes = batch_people(people, gt_boxes)
        pred_boxes = predictions.boxes.to(prior_boxes)
        k, a = self._candidates(prior_boxes, priors.strides.to(prior_boxes), boxes)
        iou = box_ops.paired_iou(boxes[k], pred_boxes[image[k], a])
        score = predictions.scores[image[k], a, 0].to(iou).clamp(0.0, 1.0)
        cost = F.binary_cross_entropy(score, torch.ones_like(score), reduction="none")
        cost = cost - self.iou_weight * torch.log(iou + 1e-8)
        take = self._dynamic_k(k, a, iou, cost, len(boxes))
        k, a, cost = k[take], a[take], cost[take]
        won = settle_contests(image[k] * num_priors + a, cost, person[k], largest=False)
        k, a = k[won], a[won]
        matched[image[k], a] = person[k]
        mark_ignored(matched, prior_boxes, gt_boxes, regions, self.ignore_ioa, self.max_elements)
        if self.low_quality:
            quality = torch.full(matched.shape, -1.0, dtype=iou.dtype, device=iou.device)
            quality[image[k], a] = box_ops.paired_iou(boxes[k], pred_boxes[image[k], a])
            low_quality_rounds(prior_boxes, gt_boxes, people, matched, quality, self.max_elements)
        pos_image, pos_prior = (matched >= 0).nonzero(as_tuple=True)
        gt = gt_boxes[pos_image, matched[pos_image, pos_prior]]
        soft[pos_image, pos_prior] = box_ops.paired_iou(gt, pred_boxes[pos_image, pos_prior])
        return AssignResult(matched, soft_targets=soft)

    def _candidates(self, prior_boxes, strides, boxes):
        """Rule 2: (person k, prior a) pairs of the whole batch's list of people."""
        points = (prior_boxes[:, :2] + prior_boxes[:, 2:]) / 2
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        reach = self.center_radius * strides

        def keep(rows: slice) -> torch.Tensor:
            return (points[None] - centres[rows, None]).abs().amax(dim=-1) < reach

        return candidate_pairs(len(boxes), len(points), self.max_elements, keep, points.device)

    def _dynamic_k(self, k, a, iou, cost, num_people) -> torch.Tensor:
        """Rule 4 on the pairs (person k, prior a) -> (P,) bool, the pairs each person takes."""
        by_iou = _order(k, -iou, a)
        top = torch.zeros_like(iou)
        first = rank_in_group(k[by_iou]) < self.candidate_topk
        top[by_iou[first]] = iou[by_iou[first]]
        total = torch.zeros(num_people, dtype=iou.dtype, device=iou.device)
        total.index_add_(0, k, top)
        dynamic_k = total.long().clamp(min=1)  # truncated, as int() in YOLOX
        by_cost = _order(k, cost, a)
        take = torch.zeros_like(k, dtype=torch.bool)
        take[by_cost] = rank_in_group(k[by_cost]) < dynamic_k[k[by_cost]]
        return take


def _order(group: torch.Tensor, key: torch.Tensor, tie: torch.Tensor) -> torch.Tensor:
    """Pair indices sorted by group, then key ascending, then tie ascending."""
    order = torch.argsort(tie, stable=True)
    order = order[torch.argsort(key[order], stable=True)]
    return order[torch.argsort(group[order], stable=True)]
