"""Pairing detections with ground truth over a whole set, and the two matchings the metrics use.

Every image is paired on small per-image numpy arrays (float64, the reference's arithmetic), and
the result is flattened into one `Pairs` table for the whole set: detections and GT numbered
globally (images in GT order, detections of an image by descending score, stable), plus the list
of candidate pairs (edges) whose IoU passes the threshold. The matchings then run on that edge
list for all images at once:

- `greedy_match`: the field's greedy-by-score matching (each detection, best score first, takes the
  best still-free GT), resolved in rounds of vectorised conflict checks instead of a loop over
  detections;
- `max_weight_match`: a maximum-total-IoU bipartite matching (the JI's), on the connected
  components of the candidate graph with `scipy.optimize.linear_sum_assignment`.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

IOU_THRESHOLD = 0.5
EPS = 1e-6  # the reference's epsilon: IoU = inter / (union + EPS), IoA = inter / (area + EPS)


def clip_boxes(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """The reference's clipping of (N, 4) xyxy boxes: x1 to [0, W-1], y1 to [0, H-1], x2 to
    [0, W], y2 to [0, H]. Returns a new float64 array."""
    b = np.array(boxes, np.float64).reshape(-1, 4)
    b[:, 0] = np.minimum(np.maximum(b[:, 0], 0), width - 1)
    b[:, 1] = np.minimum(np.maximum(b[:, 1], 0), height - 1)
    b[:, 2] = np.maximum(np.minimum(b[:, 2], width), 0)
    b[:, 3] = np.maximum(np.minimum(b[:, 3], height), 0)
    return b


def box_area(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy -> (N,) area, 0 for degenerate (inverted) boxes."""
    return np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)


def intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection areas: a (N, 4), b (M, 4) xyxy -> (N, M)."""
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    return np.maximum(iw, 0) * np.maximum(ih, 0)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den <= 0 (only reachable when num is 0 too)."""
    return num / np.where(den > 0, den, 1.0)


def pairwise_iou(a: np.ndarray, b: np.ndarray, eps: float = EPS) -> np.ndarray:
    """IoU = inter / (area_a + area_b - inter + eps): a (N, 4), b (M, 4) -> (N, M)."""
    inter = intersection(a, b)
    return _safe_div(inter, box_area(a)[:, None] + box_area(b)[None, :] - inter + eps)


def pairwise_ioa(a: np.ndarray, b: np.ndarray, eps: float = EPS) -> np.ndarray:
    """Intersection over the area of `a`: inter / (area_a + eps), (N, 4), (M, 4) -> (N, M)."""
    return _safe_div(intersection(a, b), box_area(a)[:, None] + eps)


@dataclass
class PairRule:
    """How an image's detections are paired with its GT.

    Attributes:
        threshold: IoU (and IoA) threshold.
        inclusive: pass with `>= threshold` (CityPersons) instead of `> threshold` (CrowdHuman).
        eps: epsilon added to the IoU and IoA denominators (0 for CityPersons).
    """

    threshold: float = IOU_THRESHOLD
    inclusive: bool = False
    eps: float = EPS

    def passes(self, values: np.ndarray) -> np.ndarray:
        return values >= self.threshold if self.inclusive else values > self.threshold


CROWDHUMAN_RULE = PairRule()


@dataclass
class Pairs:
    """Detections, GT and candidate pairs of a whole set, numbered globally.

    Detections are ordered by image (GT order), then by descending score (stable); GT are the
    non-ignored boxes, by image, in file order.

    Attributes:
        num_images: number of images (GT records).
        det_image: (D,) image index of each detection.
        det_score: (D,) float64 scores.
        det_ignored: (D,) True where the detection's IoA (over its own area) with some ignore
            region passes the threshold.
        gt_image: (G,) image index of each GT box.
        gt_ignored: (G,) True where the GT's IoA (over the GT's area) with some ignore region
            passes the threshold (the JI removes such GT when unmatched).
        edge_det, edge_gt: (E,) int64 endpoints of the candidate pairs (IoU passes the threshold).
        edge_iou: (E,) float64 their IoU.
    """

    num_images: int
    det_image: np.ndarray
    det_score: np.ndarray
    det_ignored: np.ndarray
    gt_image: np.ndarray
    gt_ignored: np.ndarray
    edge_det: np.ndarray
    edge_gt: np.ndarray
    edge_iou: np.ndarray

    @property
    def num_dets(self) -> int:
        return len(self.det_score)

    @property
    def num_gt(self) -> int:
        return len(self.gt_image)


def pair_image(
    dt: np.ndarray, gt: np.ndarray, ign: np.ndarray, rule: PairRule
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pair one image: dt (D, 4), valid gt (G, 4), ignore regions (K, 4), all float64 xyxy.

    Returns (rows, cols, ious) of the candidate pairs (E,), dt_ignored (D,), gt_ignored (G,).
    """
    iou = pairwise_iou(dt, gt, rule.eps)
    rows, cols = np.nonzero(rule.passes(iou))
    if len(ign):
        dt_ignored = rule.passes(pairwise_ioa(dt, ign, rule.eps).max(1))
        gt_ignored = rule.passes(pairwise_ioa(gt, ign, rule.eps).max(1))
    else:
        dt_ignored, gt_ignored = np.zeros(len(dt), bool), np.zeros(len(gt), bool)
    return rows, cols, iou[rows, cols], dt_ignored, gt_ignored


@dataclass
class ImageBoxes:
    """One image ready for pairing: float64 xyxy arrays, detections sorted by score.

    Attributes:
        dt: (D, 4) detections, by descending score (stable). scores: (D,).
        gt: (G, 4) non-ignored GT. ign: (K, 4) ignore regions.
    """

    dt: np.ndarray
    scores: np.ndarray
    gt: np.ndarray
    ign: np.ndarray


def build_pairs(images: list[ImageBoxes], rule: PairRule = CROWDHUMAN_RULE) -> Pairs:
    """Pair every image and flatten the results into one `Pairs` table."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("rows", "cols", "iou", "dig", "gig")}
    n_dt = np.array([len(im.dt) for im in images], np.int64)
    n_gt = np.array([len(im.gt) for im in images], np.int64)
    dt_off = np.concatenate([[0], np.cumsum(n_dt)])
    gt_off = np.concatenate([[0], np.cumsum(n_gt)])
    for i, im in enumerate(images):
        rows, cols, ious, dig, gig = pair_image(im.dt, im.gt, im.ign, rule)
        parts["rows"].append(rows + dt_off[i])
        parts["cols"].append(cols + gt_off[i])
        parts["iou"].append(ious)
        parts["dig"].append(dig)
        parts["gig"].append(gig)
    cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    image_index = np.arange(len(images))
    scores = [im.scores for im in images]
    return Pairs(
        num_images=len(images),
        det_image=np.repeat(image_index, n_dt),
        det_score=np.concatenate(scores).astype(np.float64) if scores else np.zeros(0),
        det_ignored=cat["dig"].astype(bool),
        gt_image=np.repeat(image_index, n_gt),
        gt_ignored=cat["gig"].astype(bool),
        edge_det=cat["rows"].astype(np.int64),
        edge_gt=cat["cols"].astype(np.int64),
        edge_iou=cat["iou"].astype(np.float64),
    )


def _starts(keys: np.ndarray) -> np.ndarray:
    """(N,) True where a sorted key array starts a new run of equal keys."""
    out = np.ones(len(keys), bool)
    out[1:] = keys[1:] != keys[:-1]
    return out


def greedy_match(pairs: Pairs, prefer_last: bool = False) -> np.ndarray:
    """The greedy-by-score matching of every image at once.

    Each detection, in order, takes the free GT of highest IoU among its candidate pairs (ties:
    the first GT in file order, or the last with `prefer_last`, as CityPersons' `>=` does).
    Resolved in rounds: a detection's current best GT is final once no earlier unresolved
    detection has that GT among its free candidates (earlier detections can only take GT away,
    so its choice cannot change). The earliest unresolved detection always qualifies, so every
    round makes progress; crowds need a handful of rounds.

    Returns:
        (D,) int64 global GT index matched to each detection, -1 where unmatched.
    """
    matched = np.full(pairs.num_dets, -1, np.int64)
    gt_key = -pairs.edge_gt if prefer_last else pairs.edge_gt
    order = np.lexsort((gt_key, -pairs.edge_iou, pairs.edge_det))
    d, g = pairs.edge_det[order], pairs.edge_gt[order]  # by det, best candidate first
    taken = np.zeros(pairs.num_gt, bool)
    owner = np.full(pairs.num_gt, -1, np.int64)  # per GT: the earliest det still wanting it
    while len(d):
        first = _starts(d)
        first_d, first_g = d[first], g[first]  # each det's current best free GT
        by_gt = np.lexsort((d, g))
        head = by_gt[_starts(g[by_gt])]
        owner[g[head]] = d[head]
        win = owner[first_g] == first_d
        matched[first_d[win]] = first_g[win]
        taken[first_g[win]] = True
        keep = (matched[d] < 0) & ~taken[g]
        d, g = d[keep], g[keep]
    return matched


def max_weight_match(pairs: Pairs, keep_det: np.ndarray) -> np.ndarray:
    """A maximum-total-IoU matching over the candidate pairs of the kept detections.

    The candidate graph splits into many small connected components; a component with one
    detection or one GT is matched by its heaviest edge, the others each by
    `scipy.optimize.linear_sum_assignment` on their dense IoU block (non-candidates weigh 0).

    Args:
        keep_det: (D,) bool, the detections taking part (e.g. score above a JI threshold).

    Returns:
        (E,) bool, the chosen candidate pairs (at most one per detection and per GT).
    """
    chosen = np.zeros(len(pairs.edge_det), bool)
    live = np.flatnonzero(keep_det[pairs.edge_det])
    if not len(live):
        return chosen
    d, g, w = pairs.edge_det[live], pairs.edge_gt[live], pairs.edge_iou[live]
    d_local = _dense_rank(d)
    g_local = _dense_rank(g)
    nd = int(d_local.max()) + 1
    graph = coo_matrix(
        (np.ones(len(live)), (d_local, nd + g_local)), shape=(nd + g_local.max() + 1,) * 2
    )
    _, label = connected_components(graph, directed=False)
    comp = label[d_local]
    n_det_in = np.bincount(label[:nd])[comp]
    n_gt_in = np.bincount(label[nd:])[comp]
    star = (n_det_in == 1) | (n_gt_in == 1)
    chosen[live[_best_edge_per_component(comp, w, star)]] = True
    hard = np.flatnonzero(~star)
    if len(hard):
        picked = _assign_components(_dense_rank(comp[hard]), d[hard], g[hard], w[hard])
        chosen[live[hard[picked]]] = True
    return chosen


def _dense_rank(values: np.ndarray) -> np.ndarray:
    """(N,) 0-based rank of each non-negative integer value among the distinct values."""
    present = np.zeros(int(values.max()) + 1, bool)
    present[values] = True
    return (np.cumsum(present) - 1)[values]


def _best_edge_per_component(comp: np.ndarray, w: np.ndarray, star: np.ndarray) -> np.ndarray:
    """Indices of the heaviest edge of each star component (one det or one GT)."""
    idx = np.flatnonzero(star)
    order = idx[np.lexsort((-w[idx], comp[idx]))]
    return order[_starts(comp[order])]


def _local_index(comp: np.ndarray, node: np.ndarray, ncomp: int) -> tuple[np.ndarray, np.ndarray]:
    """Per edge, the rank of its node within its component, and (C,) nodes per component.

    comp: (E,) component of each edge; node: (E,) dense node index (0..N-1, all present).
    """
    node_comp = np.empty(int(node.max()) + 1, np.int64)
    node_comp[node] = comp
    count = np.bincount(node_comp, minlength=ncomp)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    order = np.argsort(node_comp, kind="stable")
    rank = np.empty(len(node_comp), np.int64)
    rank[order] = np.arange(len(node_comp)) - start[node_comp[order]]
    return rank[node], count


def _assign_components(comp: np.ndarray, d: np.ndarray, g: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Indices (into the given edges) of a maximum-weight matching within each component.

    comp: (E,) component 0..C-1 of each edge; d, g: (E,) endpoints; w: (E,) weights. All dense
    blocks are laid out in one flat buffer. Small blocks (few enough one-to-one assignments of
    the shorter side, `MAX_ENUMERATED`) are solved together per shape by trying every
    assignment; the others one by one with `linear_sum_assignment`.
    """
    ncomp = int(comp.max()) + 1
    row, nrow = _local_index(comp, _dense_rank(d), ncomp)
    col, ncol = _local_index(comp, _dense_rank(g), ncomp)
    offset = np.concatenate([[0], np.cumsum(nrow * ncol)])
    cell = offset[comp] + row * ncol[comp] + col
    weight = np.zeros(offset[-1])
    weight[cell] = w
    edge_at = np.full(offset[-1], -1, np.int64)
    edge_at[cell] = np.arange(len(comp))
    picked = []
    small = np.zeros(ncomp, bool)
    shapes = np.unique(np.stack([nrow, ncol], 1), axis=0)
    for a, b in shapes.tolist():
        if math.perm(max(a, b), min(a, b)) <= MAX_ENUMERATED:
            members = np.flatnonzero((nrow == a) & (ncol == b))
            small[members] = True
            picked.append(_enumerate_blocks(weight, offset[members], a, b))
    for c in np.flatnonzero(~small).tolist():
        block = weight[offset[c] : offset[c + 1]].reshape(nrow[c], ncol[c])
        r, k = linear_sum_assignment(block, maximize=True)
        picked.append(offset[c] + r * ncol[c] + k)
    e = edge_at[np.concatenate(picked)]
    return e[e >= 0]


# Largest number of one-to-one assignments of a block solved by trying them all (a 3 x 7 block
# has 210, a 4 x 6 block 360).
MAX_ENUMERATED = 400


@functools.cache
def _assignments(a: int, b: int) -> np.ndarray:
    """(P, a) every injective map of a rows into b columns (a <= b), as column indices."""
    return np.asarray(list(itertools.permutations(range(b), a)), np.int64).reshape(-1, a)


def _enumerate_blocks(weight: np.ndarray, starts: np.ndarray, a: int, b: int) -> np.ndarray:
    """Flat cells of the best assignment of each (a, b) block starting at `starts` (C,).

    Every assignment of the shorter side is scored at once: (C, P) totals, the first maximum
    wins.
    """
    blocks = weight[starts[:, None] + np.arange(a * b)].reshape(-1, a, b)
    if a > b:
        blocks = blocks.transpose(0, 2, 1)
    short, long_ = min(a, b), max(a, b)
    perms = _assignments(short, long_)  # (P, short)
    rows = np.arange(short)
    totals = blocks[:, rows, perms].sum(-1)  # (C, P)
    best = perms[np.argmax(totals, axis=1)]  # (C, short)
    r, k = (rows[None, :], best) if a <= b else (best, rows[None, :])
    return (starts[:, None] + r * b + k).reshape(-1)
