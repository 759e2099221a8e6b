"""The NMS family on xyxy boxes: hard NMS, Adaptive NMS, and Soft-NMS (from `soft`).

Hard and Adaptive NMS take boxes (N, 4) float xyxy and scores (N,) and return int64 indices,
sorted by decreasing score (the lowest index first among equal scores). A box is suppressed by a
kept box when their IoU is > the threshold (strict), as in torchvision. Zero-area boxes overlap
nothing: they are never suppressed and never suppress.

Adaptive NMS works on the sparse set of overlapping pairs and resolves the greedy order in rounds:
each round keeps every box that no live higher-scored box overlaps, then drops what those boxes
suppress. That is exactly the greedy result (a box is decided once all boxes before it are), all on
the boxes' device, in as many rounds as the longest chain of suppressions.
"""

from __future__ import annotations

import torch
import torchvision

from crowdet.postprocess.pairs import PAIR_BLOCK, check_scored_boxes, overlap_pairs
from crowdet.postprocess.soft import batched_soft_nms, soft_nms

__all__ = [
    "adaptive_nms",
    "batched_adaptive_nms",
    "batched_nms",
    "batched_soft_nms",
    "nms",
    "soft_nms",
]


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Hard NMS: boxes (N, 4) xyxy, scores (N,) -> kept indices (K,) int64, by decreasing score."""
    check_scored_boxes(boxes, scores)
    return torchvision.ops.nms(boxes, scores, iou_threshold)


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Hard NMS within each group: idxs (N,) int64 is the group (class, image) of each box.

    boxes (N, 4) xyxy, scores (N,) -> kept indices (K,) int64, by decreasing score.
    """
    check_scored_boxes(boxes, scores, idxs)
    return torchvision.ops.batched_nms(boxes, scores, idxs, iou_threshold)


def adaptive_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    densities: torch.Tensor,
    iou_threshold: float = 0.5,
) -> torch.Tensor:
    """Adaptive NMS (Liu et al., CVPR 2019): a kept box M suppresses the lower-scored boxes whose
    IoU with it is > max(iou_threshold, density of M).

    boxes (N, 4) xyxy, scores (N,), densities (N,) predicted crowd density of each box
    -> kept indices (K,) int64, by decreasing score.
    """
    return batched_adaptive_nms(boxes, scores, densities, None, iou_threshold)


def batched_adaptive_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    densities: torch.Tensor,
    idxs: torch.Tensor | None,
    iou_threshold: float = 0.5,
    max_elements: int = PAIR_BLOCK,
) -> torch.Tensor:
    """`adaptive_nms` within each group of idxs (N,) int64 (all boxes together when None)."""
    check_scored_boxes(boxes, scores, idxs)
    if densities.shape != scores.shape:
        raise ValueError(f"densities must have shape {tuple(scores.shape)}, got {densities.shape}")
    order = torch.sort(scores, descending=True, stable=True).indices
    groups = None if idxs is None else idxs[order]
    first, second, iou = overlap_pairs(boxes[order], iou_threshold, groups, max_elements)
    limit = densities[order].to(iou.dtype).clamp(min=iou_threshold)
    strong = iou > limit[first]
    return order[greedy_rounds(len(order), first[strong], second[strong])]


def greedy_rounds(num: int, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Greedy suppression over boxes 0..num-1 in priority order, given the pairs where box first
    (E,) suppresses box second (E,) if kept (first < second).

    Returns the kept positions (K,) int64, increasing.
    """
    device = first.device
    alive = torch.ones(num, dtype=torch.bool, device=device)
    kept = torch.zeros(num, dtype=torch.bool, device=device)
    while bool(alive.any()):
        live = alive[first] & alive[second]
        first, second = first[live], second[live]
        blocked = torch.zeros_like(alive)
        blocked[second] = True
        picks = alive & ~blocked
        kept |= picks
        alive &= ~picks
        alive[second[picks[first]]] = False
    return torch.nonzero(kept).flatten()
