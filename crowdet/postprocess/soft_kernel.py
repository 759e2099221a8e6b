"""The one-by-one Soft-NMS procedure on the sparse overlap graph, compiled with numba.

Only boxes that overlap decay each other (IoU 0 decays by exp(0) = 1, and the linear decay needs
IoU > its threshold). With the boxes sorted by group, then x1, the boxes a pick can overlap are
a window around it (after it: those starting before it ends; before it: while the running
largest x2 passes its x1), and the live boxes are kept in a linked list in that order, so a
pick looks only at the live boxes of its window; boxes picked or dropped cost nothing more.
The picks come from a max-heap of (score, index) whose keys may be stale (scores only fall): a
popped entry whose score has fallen since goes back with its current score, a fresh one is the
pick. IoUs follow the formula of crowdet.boxes.paired_iou and the scores are multiplied by the
same factors in the same order as the textbook procedure, in the dtype of the boxes and scores,
so the picks and the decayed scores are those of the one-by-one definition.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["soft_nms_sorted"]


@numba.njit(cache=True, inline="always")
def _before(s_a, i_a, s_b, i_b) -> bool:
    """Entry a comes out of the heap before entry b: higher score, then lower index."""
    return s_a > s_b or (s_a == s_b and i_a < i_b)


@numba.njit(cache=True)
def _push(hs, hi, size, s, i) -> int:
    pos = size
    hs[pos], hi[pos] = s, i
    while pos > 0:
        parent = (pos - 1) // 2
        if not _before(hs[pos], hi[pos], hs[parent], hi[parent]):
            break
        hs[pos], hs[parent] = hs[parent], hs[pos]
        hi[pos], hi[parent] = hi[parent], hi[pos]
        pos = parent
    return size + 1


@numba.njit(cache=True)
def _pop(hs, hi, size) -> int:
    """Remove the first entry (hs[0], hi[0], read before the call); returns the new size."""
    size -= 1
    hs[0], hi[0] = hs[size], hi[size]
    pos = 0
    while True:
        left, best = 2 * pos + 1, pos
        if left < size and _before(hs[left], hi[left], hs[best], hi[best]):
            best = left
        if left + 1 < size and _before(hs[left + 1], hi[left + 1], hs[best], hi[best]):
            best = left + 1
        if best == pos:
            return size
        hs[pos], hs[best] = hs[best], hs[pos]
        hi[pos], hi[best] = hi[best], hi[pos]
        pos = best


@numba.njit(cache=True)
def _reach(boxes, group):
    """(n,) the largest x2 of the boxes at or before each position within its group (boxes
    sorted by group, then x1): no box before position p overlaps a box starting at or after
    reach[p]."""
    n = len(boxes)
    reach = np.empty(n, boxes.dtype)
    for p in range(n):
        reach[p] = boxes[p, 2]
        if p > 0 and group[p - 1] == group[p] and reach[p - 1] > reach[p]:
            reach[p] = reach[p - 1]
    return reach


@numba.njit(cache=True, inline="always")
def _decay(x1, y1, x2, y2, area, scores, p, q, consts, linear) -> None:
    """Decay the score of box q by its overlap with the pick p; the IoU as
    crowdet.boxes.paired_iou computes it."""
    if not (y1[q] < y2[p] and y1[p] < y2[q]):
        return  # apart in y: IoU 0
    eps, sigma, one, min_iou, zero = consts[0], consts[1], consts[2], consts[3], consts[4]
    w = min(x2[p], x2[q]) - max(x1[p], x1[q])
    h = min(y2[p], y2[q]) - max(y1[p], y1[q])
    inter = max(w, zero) * max(h, zero)
    iou = inter / ((area[p] + area[q] - inter) + eps)
    if iou > min_iou:
        scores[q] = scores[q] * (one - iou if linear else math.exp(-(iou * iou) / sigma))


@numba.njit(cache=True, inline="always")
def _unlink(nxt, prv, q) -> None:
    """Take position q out of the list of live boxes."""
    if prv[q] >= 0:
        nxt[prv[q]] = nxt[q]
    if nxt[q] < len(nxt):
        prv[nxt[q]] = prv[q]


@numba.njit(cache=True)
def soft_nms_sorted(boxes, scores, index, group, consts, linear, score_threshold, max_per_group):
    """Soft-NMS over boxes (n, 4) xyxy sorted by group (n,) int64 0..G-1, then x1.

    scores (n,), every one >= score_threshold (a scalar of the same dtype); index (n,) int64 a
    permutation of 0..n-1, the lower index picked first among equal scores; consts (5,) in the
    boxes' dtype: EPS, sigma, 1, the IoU a pair must exceed to decay (0 for the Gaussian
    decay), 0; linear: decay by 1 - IoU, else by exp(-IoU^2 / sigma); max_per_group > 0 caps
    the picks of each group. Returns the picked positions (K,) int64 in pick order and their
    scores (K,).
    """
    n = len(scores)
    s = scores.copy()
    alive = np.ones(n, np.bool_)
    reach = _reach(boxes, group)
    x1, y1 = boxes[:, 0].copy(), boxes[:, 1].copy()
    x2, y2 = boxes[:, 2].copy(), boxes[:, 3].copy()
    zero = consts[4]
    area = np.maximum(x2 - x1, zero) * np.maximum(y2 - y1, zero)
    nxt, prv = np.arange(1, n + 1), np.arange(-1, n - 1)  # the live boxes, a linked list
    picks_of = np.zeros(group.max() + 1 if n else 0, np.int64)
    cap = max_per_group if max_per_group > 0 else n + 1
    hs, hi = np.empty(n + 1, scores.dtype), np.empty(n + 1, np.int64)
    size = 0
    for i in range(n):
        size = _push(hs, hi, size, s[i], index[i])
    rank = np.empty(n, np.int64)  # index -> position
    rank[index] = np.arange(n)
    picked, picked_scores = np.empty(n, np.int64), np.empty(n, scores.dtype)
    k = 0
    while size > 0:
        top_s, top = hs[0], rank[hi[0]]
        size = _pop(hs, hi, size)
        if not alive[top]:
            continue  # picked, dropped, or its group is full
        if top_s != s[top]:  # decayed since it was pushed: back in with its score
            size = _push(hs, hi, size, s[top], index[top])
            continue
        alive[top] = False
        _unlink(nxt, prv, top)
        g = group[top]
        if picks_of[g] >= cap:
            continue
        picks_of[g] += 1
        picked[k], picked_scores[k] = top, top_s
        k += 1
        q = nxt[top]  # live boxes after it that start before it ends
        while q < n and group[q] == g and x1[q] < x2[top]:
            _decay(x1, y1, x2, y2, area, s, top, q, consts, linear)
            if not s[q] >= score_threshold:  # below, or NaN: dropped
                alive[q] = False
                _unlink(nxt, prv, q)
            q = nxt[q]
        q = prv[top]  # live boxes before it, while some box up to there may end after it starts
        while q >= 0 and group[q] == g and reach[q] > x1[top]:
            _decay(x1, y1, x2, y2, area, s, top, q, consts, linear)
            if not s[q] >= score_threshold:
                alive[q] = False
                _unlink(nxt, prv, q)
            q = prv[q]
    return picked[:k], picked_scores[:k]
