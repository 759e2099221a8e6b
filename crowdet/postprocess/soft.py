"""Soft-NMS (Bodla et al., ICCV 2017): decay the scores of overlapping boxes instead of removing
them.

The textbook procedure picks the highest-scored box, decays every remaining box by f(IoU with
the pick), drops the boxes whose score fell below ``score_threshold`` and repeats. Here the picks
are made in rounds, all on the boxes' device:

- A live box is picked in a round when it outranks every live box it overlaps (IoU > 0 for the
  Gaussian decay, > ``iou_threshold`` for the linear one; higher score, then lower index).
  Nothing can decay such a box any more: only its neighbours could, and they are all below it and
  only go down. Two such boxes never overlap.
- The picks of a round decay their live neighbours at once. Decays multiply, so the order in which
  they are applied does not change the result (beyond float rounding).

So every box ends with the same score as in the one-by-one procedure, and sorting the picks by
(score descending, index ascending) gives its pick order. A round costs one pass over the
overlapping pairs; crowds need as many rounds as their longest chain of overlapping boxes of
decreasing score, usually far fewer than the number of boxes.
"""

from __future__ import annotations

import torch

from crowdet.errors import ConfigError
from crowdet.postprocess.pairs import PAIR_BLOCK, check_boxes, overlap_pairs

__all__ = ["batched_soft_nms", "soft_nms"]

METHODS = ("gaussian", "linear")


def soft_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    method: str = "gaussian",
    sigma: float = 0.5,
    iou_threshold: float = 0.3,
    score_threshold: float = 0.001,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft-NMS over all boxes.

    Args:
        boxes: (N, 4) xyxy float.
        scores: (N,) float.
        method: "gaussian" decays every remaining box by exp(-iou^2 / sigma); "linear" by
            (1 - iou) where iou > iou_threshold.
        sigma: width of the Gaussian decay.
        iou_threshold: overlap above which the linear decay applies (unused by "gaussian").
        score_threshold: boxes whose (decayed) score falls below this are dropped.

    Returns:
        keep (K,) int64, the indices in the order they were picked, and new_scores (K,) their
        decayed scores (non-increasing), in the dtype of ``scores``.
    """
    return batched_soft_nms(
        boxes, scores, None, method, sigma, iou_threshold, score_threshold, PAIR_BLOCK
    )


def batched_soft_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    idxs: torch.Tensor | None,
    method: str = "gaussian",
    sigma: float = 0.5,
    iou_threshold: float = 0.3,
    score_threshold: float = 0.001,
    max_elements: int = PAIR_BLOCK,
    max_per_group: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`soft_nms` within each group of idxs (N,) int64 (an image, a class): boxes of different
    groups never decay each other. Returns (keep (K,), new_scores (K,)) over all groups, sorted
    by decayed score (then index). ``max_elements`` bounds the IoU block built at once.

    max_per_group > 0: only the best max_per_group boxes of each group are wanted. A live box
    whose score is already below the max_per_group-th best pick of its group can never rank
    higher (scores only fall), and nothing it could still decay ranks higher either, so it is
    dropped at once: the best max_per_group of every group are exactly those of the full run, in
    fewer rounds once a group has that many picks (never before). Boxes beyond them may be
    returned too."""
    check_boxes(boxes, scores, idxs)
    if method not in METHODS:
        raise ConfigError(f"unknown soft-NMS method {method!r}: expected one of {METHODS}")
    if not sigma > 0:
        raise ConfigError(f"soft-NMS sigma must be > 0, got {sigma}")
    work = scores.to(torch.promote_types(scores.dtype, torch.float32))
    candidates = torch.nonzero(work >= score_threshold).flatten()
    groups = None if idxs is None else idxs[candidates]
    min_iou = 0.0 if method == "gaussian" else iou_threshold
    first, second, iou = overlap_pairs(boxes[candidates], min_iou, groups, max_elements)
    if method == "gaussian":
        factor = torch.exp(-(iou * iou) / sigma)
    else:
        factor = 1.0 - iou
    if max_per_group > 0:
        group_ids = torch.zeros_like(candidates) if groups is None else groups
        unique, group = torch.unique(group_ids, return_inverse=True)
        cap = (group, len(unique), max_per_group)
    else:
        cap = None
    picked, final = _decay_rounds(
        work[candidates], first, second, factor.to(work.dtype), score_threshold, cap
    )
    order = torch.sort(final[picked], descending=True, stable=True).indices
    keep = picked[order]
    return candidates[keep], final[keep].to(scores.dtype)


def _decay_rounds(
    score: torch.Tensor,
    first: torch.Tensor,
    second: torch.Tensor,
    factor: torch.Tensor,
    score_threshold: float,
    cap: tuple[torch.Tensor, int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the rounds described in the module docstring.

    score (n,) initial scores, all >= score_threshold; first, second (E,) int64 the pairs of
    overlapping boxes, first < second; factor (E,) the decay one box of a pair receives when the
    other is picked; cap: (group (n,) int64 in 0..G-1, G, k) drops live boxes below the k-th best
    pick of their group (see batched_soft_nms). Returns the picked positions (K,) int64,
    increasing, and the final scores (n,).
    """
    score = score.clone()
    alive = torch.ones_like(score, dtype=torch.bool)
    picked = torch.zeros_like(alive)
    while bool(alive.any()):
        live = alive[first] & alive[second]
        first, second, factor = first[live], second[live], factor[live]
        # The lower index wins ties, and first < second.
        first_wins = score[first] >= score[second]
        beaten = torch.zeros_like(alive)
        beaten[torch.where(first_wins, second, first)] = True
        picks = alive & ~beaten
        picked |= picks
        alive &= ~picks
        hit_second, hit_first = picks[first], picks[second]
        score.scatter_reduce_(0, second[hit_second], factor[hit_second], reduce="prod")
        score.scatter_reduce_(0, first[hit_first], factor[hit_first], reduce="prod")
        alive &= score >= score_threshold
        if cap is not None:
            alive &= score >= _kth_best_pick(score, picked, *cap)[cap[0]]
    return torch.nonzero(picked).flatten(), score


def _kth_best_pick(score, picked, group, num_groups, k):
    """Per group (G,): the k-th highest score among its picked boxes (-inf while it has fewer)."""
    idx = torch.nonzero(picked).flatten()
    s, g = score[idx], group[idx]
    order = torch.sort(s, descending=True, stable=True).indices
    order = order[torch.sort(g[order], stable=True).indices]  # by group, best first within
    s, g = s[order], g[order]
    counts = torch.bincount(g, minlength=num_groups)
    rank = torch.arange(len(g), device=g.device) - (torch.cumsum(counts, 0) - counts)[g]
    kth = torch.full((num_groups,), float("-inf"), dtype=score.dtype, device=score.device)
    at_k = rank == k - 1
    kth[g[at_k]] = s[at_k]
    return kth
