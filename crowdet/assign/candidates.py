"""Candidate (person, prior) pairs from windows of the prior grid, never the dense (B, G, A) matrix.

Priors made by crowdet.models.anchors lie on one regular grid per pyramid level: places in rows
(y) then columns (x), K shapes per place. ``infer_grids`` recognises that layout from the prior
boxes (within a small tolerance; None when the priors are laid out any other way, and the
assigners then compare every prior with every person in blocks).

A person can only reach IoU >= t with a prior whose shape and centre lie close to its own:
IoU >= t needs intersection >= t * max(area), so the overlap along x is at least
``need_w = t * max(area) / min(heights)`` (<= the smaller width, else no prior of that shape
qualifies), and the centres are at most ``(w_person + w_prior) / 2 - need_w`` apart along x (the
same along y). ``iou_pairs`` builds, for every person, level and shape at once, the window of
grid places that rule leaves (widened by one place each side against rounding), computes the
IoU of exactly those pairs and keeps the ones >= t: every pair of IoU >= t is among them, with
the very IoU the dense computation gives. Pairs are made in blocks of at most ``max_elements``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from crowdet import boxes as box_ops

__all__ = ["Grid", "Pairs", "best_of_pairs", "infer_grids", "iou_pairs", "nearest_window"]

_SLACK = 1e-3  # relative loosening of the IoU bound against float rounding


@dataclass
class Grid:
    """The shapes of every level as rows of one table, S = sum over levels of K_l.

    start, rows, cols, shapes, shape (S,) int64: the level's first prior index, its grid size,
    its shapes per place and this row's shape index; x0, y0, step_x, step_y, w, h (S,) float:
    the first place's centre, the spacing of places and the shape's size.
    """

    start: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor
    shapes: torch.Tensor
    shape: torch.Tensor
    x0: torch.Tensor
    y0: torch.Tensor
    step_x: torch.Tensor
    step_y: torch.Tensor
    w: torch.Tensor
    h: torch.Tensor
    level: torch.Tensor  # (S,) int64 the level of each row


@dataclass
class Pairs:
    """P candidate pairs: image, person (index g in the padded targets), prior (P,) int64 and
    their IoU (P,) float."""

    image: torch.Tensor
    person: torch.Tensor
    prior: torch.Tensor
    iou: torch.Tensor


_last: list = [None, None, None]  # priors tensor, level sizes, grid: the last one recognised


def infer_grids(priors: torch.Tensor, level_sizes: list[int]) -> Grid | None:
    """The grid table of priors (A, 4) split into levels, or None when a level is not a grid.
    The same priors tensor (heads cache theirs) is recognised once."""
    if _last[0] is priors and _last[1] == list(level_sizes):
        return _last[2]
    grid = _infer(priors, level_sizes)
    _last[:] = [priors, list(level_sizes), grid]
    return grid


def _infer(priors: torch.Tensor, level_sizes: list[int]) -> Grid | None:
    rows, start = [], 0
    for level, size in enumerate(level_sizes):
        if size:
            found = _level_grid(priors[start : start + size], start, level)
            if found is None:
                return None
            rows.append(found)
        start += size
    if not rows:
        return None
    table = {key: torch.cat([row[key] for row in rows]) for key in rows[0]}
    return Grid(**table)


def _level_grid(boxes: torch.Tensor, start: int, level: int) -> dict | None:
    """One level's rows of the table, or None when its priors are not a grid."""
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    tol = 1e-3 + 1e-5 * float(boxes.abs().max())
    n = len(boxes)
    k = _leading((centres - centres[0]).abs().amax(1) <= tol)
    if n % k:
        return None
    by_place = centres.view(n // k, k, 2)
    if float((by_place - by_place[:, :1]).abs().max()) > tol:
        return None
    place = by_place[:, 0]
    cols = _leading((place[:, 1] - place[0, 1]).abs() <= tol)
    if len(place) % cols:
        return None
    rows = len(place) // cols
    grid = place.view(rows, cols, 2)
    sx = float(grid[0, 1, 0] - grid[0, 0, 0]) if cols > 1 else 1.0
    sy = float(grid[1, 0, 1] - grid[0, 0, 1]) if rows > 1 else 1.0
    if sx <= tol or sy <= tol:
        return None
    x0, y0 = float(grid[0, 0, 0]), float(grid[0, 0, 1])
    steps = [torch.arange(m, dtype=boxes.dtype, device=boxes.device) for m in (rows, cols)]
    off_y = (grid[..., 1] - (y0 + sy * steps[0])[:, None]).abs().max()
    off_x = (grid[..., 0] - (x0 + sx * steps[1])).abs().max()
    shape = (boxes[:, 2:] - boxes[:, :2]).view(n // k, k, 2)
    if max(float(off_x), float(off_y), float((shape - shape[:1]).abs().max())) > tol:
        return None
    wh = shape.amax(0)

    def full(value, dtype):
        return torch.full((k,), value, dtype=dtype, device=boxes.device)

    ints = dict(start=start, rows=rows, cols=cols, shapes=k, level=level)
    floats = dict(x0=x0, y0=y0, step_x=sx, step_y=sy)
    return {
        **{key: full(v, torch.long) for key, v in ints.items()},
        **{key: full(v, boxes.dtype) for key, v in floats.items()},
        "shape": torch.arange(k, device=boxes.device),
        "w": wh[:, 0].contiguous(),
        "h": wh[:, 1].contiguous(),
    }


def _leading(flags: torch.Tensor) -> int:
    """How many leading entries of flags (n,) bool are True (at least 1)."""
    off = (~flags).nonzero()
    return int(off[0]) if len(off) else len(flags)


def iou_pairs(
    grid: Grid,
    priors: torch.Tensor,
    gt_boxes: torch.Tensor,
    who: torch.Tensor,
    threshold: float,
    max_elements: int,
) -> Pairs:
    """Every (person, prior) pair of IoU >= threshold (of IoU > 0, every overlapping pair, for
    threshold 0), people who (B, G) bool of gt_boxes (B, G, 4), priors (A, 4) on the grid; the
    IoU is box_ops.paired_iou(person, prior)."""
    image, person = who.nonzero(as_tuple=True)
    boxes = gt_boxes[image, person]  # (N, 4)
    lo_r, hi_r, lo_c, hi_c = _iou_windows(grid, boxes, threshold)  # (N, S)
    count = (hi_r - lo_r + 1).clamp(min=0) * (hi_c - lo_c + 1).clamp(min=0)
    n_idx, s_idx = (count > 0).nonzero(as_tuple=True)
    window = (lo_r[n_idx, s_idx], lo_c[n_idx, s_idx], hi_c[n_idx, s_idx] - lo_c[n_idx, s_idx] + 1)
    count = count[n_idx, s_idx]
    parts = []
    for sl in _count_blocks(count, max_elements):
        tid, local = _expand(count[sl])
        r0, c0, ncols = (v[sl][tid] for v in window)
        s, n = s_idx[sl][tid], n_idx[sl][tid]
        row, col = r0 + local // ncols, c0 + local % ncols
        prior = grid.start[s] + (row * grid.cols[s] + col) * grid.shapes[s] + grid.shape[s]
        iou = box_ops.paired_iou(boxes[n], priors[prior])
        keep = iou >= threshold if threshold > 0 else iou > 0
        parts.append((n[keep], prior[keep], iou[keep]))
    if not parts:
        empty = torch.zeros(0, dtype=torch.long, device=priors.device)
        return Pairs(empty, empty, empty, priors.new_zeros(0))
    n, prior, iou = (torch.cat(v) for v in zip(*parts))
    return Pairs(image[n], person[n], prior, iou)


def _iou_windows(grid: Grid, boxes: torch.Tensor, threshold: float):
    """boxes (N, 4) -> first / last row and column (N, S) int64 of the places where a prior of
    each table row can reach IoU >= threshold with each box (last < first: none)."""
    t = threshold * (1 - _SLACK)
    gw, gh = (boxes[:, 2] - boxes[:, 0])[:, None], (boxes[:, 3] - boxes[:, 1])[:, None]
    gx, gy = ((boxes[:, 0] + boxes[:, 2]) / 2)[:, None], ((boxes[:, 1] + boxes[:, 3]) / 2)[:, None]
    pw, ph = grid.w[None], grid.h[None]
    top = torch.maximum(gw * gh, pw * ph) * t
    min_w, min_h = torch.minimum(gw, pw), torch.minimum(gh, ph)
    need_w, need_h = top / min_h, top / min_w
    ok = (need_w <= min_w * (1 + _SLACK)) & (need_h <= min_h * (1 + _SLACK))
    reach_x = ((gw + pw) / 2 - need_w).clamp(min=0)
    reach_y = ((gh + ph) / 2 - need_h).clamp(min=0)
    lo_c, hi_c = _span(gx, reach_x, grid.x0, grid.step_x, grid.cols)
    lo_r, hi_r = _span(gy, reach_y, grid.y0, grid.step_y, grid.rows)
    hi_r = torch.where(ok, hi_r, lo_r - 1)
    return lo_r, hi_r, lo_c, hi_c


def _span(centre, reach, origin, step, size):
    """The places i in [0, size) with |origin + i * step - centre| <= reach, one more each side."""
    lo = torch.ceil((centre - reach - origin) / step).long() - 1
    hi = torch.floor((centre + reach - origin) / step).long() + 1
    return lo.clamp(min=0), torch.minimum(hi, size[None] - 1)


def _count_blocks(count: torch.Tensor, max_elements: int):
    """Slices of count (T,) whose sums stay within max_elements (one entry at least)."""
    total = int(count.sum()) if len(count) else 0
    if total <= max_elements:
        if len(count):
            yield slice(0, len(count))
        return
    ends = torch.cumsum(count, 0)
    start = 0
    while start < len(count):
        base = int(ends[start - 1]) if start else 0
        stop = int(torch.searchsorted(ends, base + max_elements, right=True))
        stop = max(stop, start + 1)
        yield slice(start, stop)
        start = stop


def _expand(count: torch.Tensor):
    """count (T,) -> for each of count.sum() items, its entry (tid) and rank in the entry."""
    tid = torch.repeat_interleave(torch.arange(len(count), device=count.device), count)
    first = torch.cumsum(count, 0) - count
    local = torch.arange(len(tid), device=count.device) - first[tid]
    return tid, local


def best_of_pairs(pairs: Pairs, num_images: int, num_priors: int, fill: float = -1.0):
    """For each prior, the pair of highest IoU (lowest person index on ties) -> value (B, A)
    (``fill`` where a prior has no pair) and person (B, A) int64 (0 there)."""
    slot = pairs.image * num_priors + pairs.prior
    best = pairs.iou.new_full((num_images * num_priors,), fill)
    best.scatter_reduce_(0, slot, pairs.iou, reduce="amax", include_self=False)
    top = pairs.iou == best[slot]
    none = torch.iinfo(torch.long).max
    first = torch.full(best.shape, none, dtype=torch.long, device=best.device)
    first.scatter_reduce_(0, slot[top], pairs.person[top], reduce="amin")
    first[first == none] = 0
    return best.view(num_images, num_priors), first.view(num_images, num_priors)


def nearest_window(grid: Grid, centres: torch.Tensor, topk: int):
    """Windows of places around points that hold each point's ``topk`` nearest priors per level.

    centres (N, 2) -> for each level with priors, in order: prior indices (N, W_l) int64 of its
    window, in increasing order; and (N, L) float: per level, a lower bound of the squared
    distance from the point to any prior of the level outside its window (inf when the window
    is the whole level).
    """
    parts, bounds = [], []
    for level in torch.unique(grid.level).tolist():
        row = int((grid.level == level).nonzero()[0])
        g = {k: getattr(grid, k)[row] for k in ("start", "rows", "cols", "shapes")}
        start, rows, cols, k = (int(g[key]) for key in ("start", "rows", "cols", "shapes"))
        side = 2 * (math.isqrt(-(-topk // k)) // 2 + 1) + 1
        y = (grid.y0[row], grid.step_y[row])
        x = (grid.x0[row], grid.step_x[row])
        r0, nr, br, span_r = _window_axis(centres[:, 1], *y, rows, side)
        c0, nc, bc, span_c = _window_axis(centres[:, 0], *x, cols, side)
        dev = centres.device
        place = (r0[:, None, None] + torch.arange(nr, device=dev)[:, None]) * cols
        place = place + c0[:, None, None] + torch.arange(nc, device=dev)
        idx = start + place[..., None] * k + torch.arange(k, device=dev)
        parts.append(idx.reshape(len(centres), nr * nc * k))
        # a place outside the window is outside it along x or along y, and no place is nearer
        # along the other axis than the grid's span
        outside_c = bc.clamp(min=0).square() + span_r.square()
        outside_r = br.clamp(min=0).square() + span_c.square()
        bounds.append(torch.minimum(outside_c, outside_r))
    return parts, torch.stack(bounds, 1)


def _window_axis(x, origin, step, size, side):
    """Along one axis: first index (N,), window length, a lower bound of the distance (N,) from
    x to the places outside the window (inf where the window reaches both ends), and one of the
    distance from x to the span of all places (0 inside it)."""
    length = min(side, size)
    near = torch.round((x - origin) / step).long()
    first = (near - length // 2).clamp(min=0, max=size - length)
    before = origin + (first - 1) * step
    after = origin + (first + length) * step
    inf = torch.full_like(x, float("inf"))
    margin = 0.01 * step  # the priors lie on the grid within a small tolerance
    d_before = torch.where(first > 0, x - before - margin, inf)
    d_after = torch.where(first + length < size, after - x - margin, inf)
    below = origin - margin - x
    above = x - (origin + (size - 1) * step) - margin
    span = torch.maximum(below, above).clamp(min=0)
    return first, length, torch.minimum(d_before, d_after), span
