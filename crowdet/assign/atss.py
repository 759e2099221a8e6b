"""ATSS: adaptive training sample selection (Zhang et al., CVPR 2020), batched and crowd-aware.

Rules, for each image of the batch (G padded targets, A priors split into pyramid levels):

1. People are the targets with ``valid & ~ignore`` and a positive area; ignore regions are the
   targets with ``valid & ignore`` (as in the max-IoU assigner).
2. Candidates. On each level, a person's candidates are the ``topk`` priors whose centres are
   nearest its centre (all the level's priors when it has fewer; on equal distances, the lowest
   prior index first), ordered by distance then index. On prior grids
   (crowdet.assign.candidates) only a window of places around the centre is searched, with the
   same result.
3. Adaptive threshold. A person's threshold is the mean plus the standard deviation (unbiased,
   0 with a single candidate) of the IoUs of its candidates. A candidate is positive for the
   person when its IoU is >= the threshold and its centre lies strictly inside the person's box.
4. A prior positive for several people goes to the one it overlaps most (the lowest person index
   on ties). Every other prior is ``BACKGROUND``: ATSS has no in-between zone.
5. Ignore regions. A prior that is not positive and whose intersection over its own area with
   some ignore region is > ``ignore_ioa`` is ``IGNORE``: never a negative.
6. Low-quality matches (``low_quality=True``): the people left without a positive prior (a box
   too small to hold a prior centre, or one that lost every contest of rule 4) take one in the
   rounds of ``crowdet.assign.common`` (as the max-IoU assigner), with the same guarantee.

ATSS uses the level sizes of the priors, not their strides nor the predictions. Everything works
on the list of people of the whole batch: no loop over images or people, only over pyramid
levels and over blocks of at most ``max_elements`` (person, prior) distances.
"""

from __future__ import annotations

import torch

from crowdet import boxes as box_ops
from crowdet.assign.candidates import infer_grids, nearest_window
from crowdet.assign.common import (
    check_max_elements,
    low_quality_rounds,
    mark_ignored,
    start_assignment,
)
from crowdet.boxes import EPS
from crowdet.errors import ConfigError
from crowdet.structures import AssignResult, Predictions, Priors, Targets

__all__ = ["ATSSAssigner"]


class ATSSAssigner:
    """Assign each prior of each image to a person, ``BACKGROUND`` or ``IGNORE``.

    Args:
        topk: candidates per person and level.
        ignore_ioa: a prior covered by an ignore region over more than this fraction of its own
            area is never a negative.
        low_quality: give every person at least one positive prior.
        max_elements: budget of (person, prior) entries per block of distances.

    The defaults of these arguments are those of ``crowdet.config.ATSSAssignConfig``.
    """

    uses_predictions = False

    def __init__(self, topk: int, ignore_ioa: float, low_quality: bool, max_elements: int):
        if topk < 1:
            raise ConfigError(f"ATSS assigner needs topk >= 1, got topk={topk}")
        check_max_elements(max_elements)
        self.topk, self.ignore_ioa = topk, ignore_ioa
        self.low_quality, self.max_elements = low_quality, max_elements

    def __call__(
        self, priors: Priors, targets: Targets, predictions: Predictions | None = None
    ) -> AssignResult:
        """priors (A, 4) in levels of priors.level_sizes, targets (B, G) -> AssignResult with
        matched (B, A) int64 on the device of the priors: the index g in [0, G) of a positive
        prior's person, else BACKGROUND (-1) or IGNORE (-2)."""
        prior_boxes, people, regions, gt_boxes, matched, empty = start_assignment(
            priors, targets, predictions
        )
        if empty:
            return AssignResult(matched)

        image, person = people.nonzero(as_tuple=True)  # (N,) the people of the whole batch
        boxes = gt_boxes[image, person]
        sizes, topk, budget = list(priors.level_sizes), self.topk, self.max_elements
        grid = infer_grids(prior_boxes, sizes)
        if grid is None:
            cand = _candidates(prior_boxes, boxes, sizes, topk, budget)  # (N, K)
        else:
            cand = _window_candidates(grid, prior_boxes, boxes, sizes, topk, budget)
        cand_iou = box_ops.paired_iou(boxes[:, None, :], prior_boxes[cand])  # (N, K)
        inside = _centre_inside(prior_boxes[cand], boxes)
        positive = (cand_iou >= _threshold(cand_iou)[:, None]) & inside
        iou_of_pos = _resolve(matched, image, person, cand, cand_iou, positive, matched.shape[1])
        mark_ignored(matched, prior_boxes, gt_boxes, regions, self.ignore_ioa, budget)
        if self.low_quality:
            low_quality_rounds(prior_boxes, gt_boxes, people, matched, iou_of_pos, budget, grid)
        return AssignResult(matched)


def _centres(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[..., :2] + boxes[..., 2:]) / 2


def _candidates(priors, boxes, level_sizes, topk, max_elements) -> torch.Tensor:
    """priors (A, 4), boxes (N, 4) -> (N, K) prior indices: on each level, the ``topk`` priors
    nearest each box by centre distance; K = sum over levels of min(topk, level size)."""
    box_c = _centres(boxes)
    out, start = [], 0
    for size in level_sizes:
        k = min(topk, size)
        if k > 0:
            prior_c = _centres(priors[start : start + size])
            rows = max(1, max_elements // size)
            parts = [
                _nearest(_squared_distance(box_c[r : r + rows], prior_c), k)
                for r in range(0, box_c.shape[0], rows)
            ]
            idx = torch.cat(parts) if parts else box_c.new_zeros((0, k), dtype=torch.long)
            out.append(idx + start)
        start += size
    return torch.cat(out, dim=1)


def _nearest(distance: torch.Tensor, k: int) -> torch.Tensor:
    """(n, m) distances -> (n, k) columns of the k smallest, by distance then column."""
    return distance.sort(dim=1, stable=True).indices[:, :k]


def _window_candidates(grid, priors, boxes, level_sizes, topk, max_elements) -> torch.Tensor:
    """`_candidates` from windows of the prior grids around each box centre (the same indices in
    the same order); the boxes whose window may miss a nearer prior take the whole level."""
    box_c = _centres(boxes)
    windows, bounds = nearest_window(grid, box_c, topk)
    out = []
    for pos, (level, idx) in enumerate(zip(torch.unique(grid.level).tolist(), windows)):
        size, lo = level_sizes[level], int(grid.start[grid.level == level][0])
        k = min(topk, size)
        d = (box_c[:, None, :] - _centres(priors[idx])).square_().sum(dim=-1)
        ordered = d.sort(dim=1, stable=True)  # window indices rise, as the level's columns
        pick = idx.gather(1, ordered.indices[:, :k])
        unsure = ordered.values[:, k - 1] >= bounds[:, pos]
        if bool(unsure.any()):
            rows = unsure.nonzero().flatten()
            whole = _candidates(priors[lo : lo + size], boxes[rows], [size], topk, max_elements)
            pick[rows] = whole + lo
        out.append(pick)
    return torch.cat(out, dim=1)


def _squared_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Points a (n, 2) and b (m, 2) -> (n, m) squared distances, computed exactly (no matrix
    product shortcut, which would reorder near ties)."""
    d = a[:, None, :] - b[None, :, :]
    return d.square_().sum(dim=-1)


def _threshold(cand_iou: torch.Tensor) -> torch.Tensor:
    """(N, K) candidate IoUs -> (N,) mean + unbiased standard deviation (0 when K is 1)."""
    num_people, num_cand = cand_iou.shape
    if num_people == 0 or num_cand == 1:
        return cand_iou.mean(dim=1)  # no spread to measure (and no warning from std)
    std = cand_iou.std(dim=1)
    return cand_iou.mean(dim=1) + std


def _centre_inside(cand_priors: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """cand_priors (N, K, 4), boxes (N, 4) -> (N, K) bool: the prior's centre lies strictly
    inside the box."""
    c = _centres(cand_priors)
    b = boxes[:, None, :]
    gaps = torch.cat([c - b[..., :2], b[..., 2:] - c], dim=-1)  # left, top, right, bottom
    return gaps.amin(dim=-1) > EPS


def _resolve(matched, image, person, cand, cand_iou, positive, num_priors) -> torch.Tensor:
    """Rule 4, in place on matched (B, A): each positive prior takes the person of highest IoU
    (lowest index on ties). Returns (B, A) float: each positive prior's IoU with its person."""
    num_images = matched.shape[0]
    rows, cols = positive.nonzero(as_tuple=True)
    slot = image[rows] * num_priors + cand[rows, cols]
    iou = cand_iou[rows, cols]
    best = cand_iou.new_full((num_images * num_priors,), float("-inf"))
    best.scatter_reduce_(0, slot, iou, reduce="amax")
    top = iou == best[slot]
    none = torch.iinfo(torch.long).max
    first = torch.full(best.shape, none, dtype=torch.long, device=best.device)
    first.scatter_reduce_(0, slot[top], person[rows][top], reduce="amin")
    won = first != none
    matched.view(-1)[won] = first[won]
    return best.clamp(min=-1.0).view(num_images, num_priors)
