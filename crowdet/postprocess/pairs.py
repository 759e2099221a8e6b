"""Listing the overlapping pairs of a set of boxes, the sparse core of Soft-NMS and Adaptive NMS."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from crowdet import boxes as box_ops

__all__ = ["PAIR_BLOCK", "check_scored_boxes", "overlap_pairs"]

# Budget of candidate pairs examined at once when listing overlapping pairs.
PAIR_BLOCK = 2**24


def overlap_pairs(
    boxes: torch.Tensor,
    min_iou: float,
    groups: torch.Tensor | None = None,
    max_elements: int = PAIR_BLOCK,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All pairs i < j of boxes (N, 4) xyxy with IoU > min_iou >= 0 (and groups[i] == groups[j]).

    Returns first (E,) int64, second (E,) int64 with first < second, and their IoU (E,) float
    (the formula of ``crowdet.boxes.iou``), in no particular order. A sweep along x only looks at
    the pairs that can reach min_iou (`_sweep_keys`), at most about max_elements at a time.
    """
    boxes = boxes.to(torch.promote_types(boxes.dtype, torch.float32))
    x1, x2 = _sweep_keys(boxes, groups, min_iou)
    order = torch.sort(x1, stable=True).indices
    sorted_boxes = boxes[order]
    # Boxes after position p in x1 order that start before box p ends: x-ranges that overlap.
    ends = torch.searchsorted(x1[order].contiguous(), x2[order].contiguous())
    positions = torch.arange(len(order), device=boxes.device)
    counts = (ends - positions - 1).clamp(min=0)
    firsts, seconds, ious = [], [], []
    for p, q in _candidate_blocks(counts, max_elements):
        iou = box_ops.paired_iou(sorted_boxes[p], sorted_boxes[q])
        keep = iou > min_iou
        a, b = order[p[keep]], order[q[keep]]
        if groups is not None:
            same = groups[a] == groups[b]
            a, b, iou = a[same], b[same], iou[keep][same]
        else:
            iou = iou[keep]
        firsts.append(torch.minimum(a, b))
        seconds.append(torch.maximum(a, b))
        ious.append(iou)
    if not firsts:
        empty = torch.zeros(0, dtype=torch.long, device=boxes.device)
        return empty, empty, boxes.new_zeros(0)
    return torch.cat(firsts), torch.cat(seconds), torch.cat(ious)


def _sweep_keys(boxes: torch.Tensor, groups: torch.Tensor | None, min_iou: float = 0.0):
    """x1, reach (N,) float64 of the sweep: a box b after a in x1 order can have IoU > min_iou
    with a only when x1_b < reach_a. Each group is shifted right of the previous one, so boxes of
    different groups (images of a batch) never become candidate pairs.

    reach = x1 + (1 - min_iou) w: IoU > t needs the intersection (iw x ih, ih <= h_a) to exceed
    t w_a h_a, so iw > t w_a, and iw <= x2_a - x1_b. A margin of 0.1 % of w covers rounding."""
    x1, x2 = boxes[:, 0].double(), boxes[:, 2].double()
    if min_iou > 0:
        x2 = x1 + (x2 - x1) * min(1.0, (1.0 - min_iou) * 1.001 + 1e-9)
    if groups is None or len(boxes) == 0:
        return x1, x2
    rank = torch.unique(groups, return_inverse=True)[1].double()
    finite = torch.isfinite(x1) & torch.isfinite(x2)  # a non-finite box overlaps nothing anyway
    if not bool(finite.any()):
        return x1, x2
    span = (x2[finite].max() - x1[finite].min()).clamp(min=0) + 1.0
    return x1 + rank * span, x2 + rank * span


def _candidate_blocks(
    counts: torch.Tensor, max_elements: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (p, q) int64 position pairs q in (p, p + counts[p]], about max_elements at a time.

    counts (N,) int64 -> blocks of (C,) tensors covering every such pair once.
    """
    cum = torch.cumsum(counts, 0)
    start, num = 0, len(counts)
    while start < num:
        base = int(cum[start - 1]) if start else 0
        stop = int(torch.searchsorted(cum, base + max_elements, right=True))
        stop = min(max(stop, start + 1), num)
        rows = torch.arange(start, stop, device=counts.device)
        block = counts[start:stop]
        p = torch.repeat_interleave(rows, block)
        first_of_row = torch.repeat_interleave(torch.cumsum(block, 0) - block, block)
        q = p + 1 + torch.arange(len(p), device=counts.device) - first_of_row
        start = stop
        if len(p):
            yield p, q


def check_scored_boxes(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor | None = None):
    """Raise ValueError unless boxes is (N, 4) and scores (and idxs) are (N,)."""
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {tuple(boxes.shape)}")
    if scores.shape != (boxes.shape[0],):
        raise ValueError(f"scores must have shape ({boxes.shape[0]},), got {tuple(scores.shape)}")
    if idxs is not None and idxs.shape != scores.shape:
        raise ValueError(f"idxs must have shape ({boxes.shape[0]},), got {tuple(idxs.shape)}")
