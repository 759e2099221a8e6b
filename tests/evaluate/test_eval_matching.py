"""The vectorised matchings against per-detection loops and scipy's dense assignment."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from crowdet.evaluate.matching import (
    ImageBoxes,
    PairRule,
    build_pairs,
    greedy_match,
    max_weight_match,
    pairwise_ioa,
    pairwise_iou,
)


def random_images(seed: int, n_images: int = 6) -> list[ImageBoxes]:
    """Crowded images: GT in a small area, detections jittered copies (duplicates included)."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n_images):
        g = int(rng.integers(0, 12))
        xy = rng.uniform(0, 60, (g, 2))
        gt = np.concatenate([xy, xy + rng.uniform(20, 40, (g, 2))], 1)
        d = int(rng.integers(0, 30))
        src = gt[rng.integers(0, g, d)] if g else rng.uniform(0, 60, (d, 4))
        dt = src + rng.normal(0, 3, (d, 4)) * (rng.random((d, 1)) < 0.8)
        dt = np.round(dt)  # integer boxes: exact IoU ties happen
        scores = np.round(rng.random(d), 1)
        order = np.argsort(-scores, kind="stable")
        ign = np.array([[0, 0, 60, 60.0]]) if rng.random() < 0.5 else np.zeros((0, 4))
        images.append(ImageBoxes(dt[order], scores[order], gt, ign))
    return images


def naive_greedy(im: ImageBoxes, rule: PairRule, prefer_last: bool) -> list[int]:
    """Per detection, per GT loop: the best free GT (ties: first, or last with prefer_last)."""
    iou = pairwise_iou(im.dt, im.gt, rule.eps)
    used = [False] * len(im.gt)
    out = []
    for i in range(len(im.dt)):
        best, best_iou = -1, -1.0
        for j in range(len(im.gt)):
            if used[j] or not rule.passes(iou[i, j]):
                continue
            if iou[i, j] > best_iou or (prefer_last and iou[i, j] == best_iou):
                best, best_iou = j, iou[i, j]
        if best >= 0:
            used[best] = True
        out.append(best)
    return out


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(
    "rule, prefer_last", [(PairRule(), False), (PairRule(inclusive=True, eps=0.0), True)]
)
def test_greedy_match_equals_the_per_detection_loop(seed, rule, prefer_last):
    images = random_images(seed)
    pairs = build_pairs(images, rule)
    matched = greedy_match(pairs, prefer_last)
    start_d = start_g = 0
    for im in images:
        expected = naive_greedy(im, rule, prefer_last)
        got = matched[start_d : start_d + len(im.dt)]
        assert got.tolist() == [e + start_g if e >= 0 else -1 for e in expected]
        start_d, start_g = start_d + len(im.dt), start_g + len(im.gt)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("threshold", [0.0, 0.45])
def test_max_weight_match_equals_a_dense_assignment_per_image(seed, threshold):
    images = random_images(seed, n_images=10)
    pairs = build_pairs(images)
    keep = pairs.det_score > threshold
    chosen = max_weight_match(pairs, keep)
    d, g = pairs.edge_det[chosen], pairs.edge_gt[chosen]
    assert len(set(d.tolist())) == len(d) and len(set(g.tolist())) == len(g)
    assert keep[d].all()
    start = 0
    for i, im in enumerate(images):
        kept = im.scores > threshold
        iou = pairwise_iou(im.dt[kept], im.gt)
        w = np.where(iou > 0.5, iou, 0.0)
        rows, cols = linear_sum_assignment(w, maximize=True) if w.size else ([], [])
        mine = pairs.det_image[d] == i
        assert pairs.edge_iou[chosen][mine].sum() == pytest.approx(w[rows, cols].sum(), abs=1e-9)
        assert mine.sum() == int((w[rows, cols] > 0).sum())
        start += len(im.dt)


def _in_ignore(boxes: np.ndarray, ign: np.ndarray) -> np.ndarray:
    return pairwise_ioa(boxes, ign).max(1) > 0.5 if len(ign) else np.zeros(len(boxes), bool)


def test_pairs_hold_the_ignore_flags_by_ioa_over_the_own_area():
    images = random_images(3, n_images=6)
    pairs = build_pairs(images)
    det_flags = np.concatenate([_in_ignore(im.dt, im.ign) for im in images])
    gt_flags = np.concatenate([_in_ignore(im.gt, im.ign) for im in images])
    assert det_flags.any() and not det_flags.all() and gt_flags.any()
    assert (pairs.det_ignored == det_flags).all() and (pairs.gt_ignored == gt_flags).all()


@pytest.mark.parametrize("shape", [(2, 2), (2, 7), (7, 2), (3, 5), (5, 3), (4, 6), (6, 4)])
def test_blocks_solved_by_trying_every_assignment_equal_linear_sum_assignment(shape):
    from crowdet.evaluate.matching import _enumerate_blocks

    rng = np.random.default_rng(sum(shape))
    a, b = shape
    blocks = rng.uniform(0.5, 1.0, (50, a, b)) * (rng.random((50, a, b)) < 0.6)
    blocks[0] = 0.75  # every assignment ties
    blocks[1] = np.round(blocks[1], 1)  # some tie
    cells = _enumerate_blocks(blocks.reshape(-1), np.arange(50) * a * b, a, b)
    chosen = blocks.reshape(-1)[cells].reshape(50, -1)
    assert chosen.shape[1] == min(a, b)
    for c in range(50):
        r, k = linear_sum_assignment(blocks[c], maximize=True)
        assert chosen[c].sum() == pytest.approx(blocks[c][r, k].sum(), abs=1e-12)
        rows, cols = np.divmod(cells.reshape(50, -1)[c] - c * a * b, b)
        assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)


def test_max_weight_match_on_crowds_mixes_both_solvers_and_stays_maximal():
    """Crowds with 1-decimal boxes (exact IoU ties): components of many sizes, each maximal."""
    rng = np.random.default_rng(5)
    images = []
    for _ in range(3):
        xy = rng.uniform(0, 40, (40, 2))
        gt = np.round(np.concatenate([xy, xy + rng.uniform(25, 35, (40, 2))], 1), 1)
        dt = np.round(gt[rng.integers(0, 40, 70)] + rng.normal(0, 2, (70, 4)), 1)
        scores = np.round(rng.random(70), 5)
        order = np.argsort(-scores, kind="stable")
        images.append(ImageBoxes(dt[order], scores[order], gt, np.zeros((0, 4))))
    pairs = build_pairs(images)
    for t in (0.0, 0.3, 0.6):
        chosen = max_weight_match(pairs, pairs.det_score > t)
        for i, im in enumerate(images):
            iou = pairwise_iou(im.dt[im.scores > t], im.gt)
            w = np.where(iou > 0.5, iou, 0.0)
            r, k = linear_sum_assignment(w, maximize=True)
            mine = pairs.det_image[pairs.edge_det[chosen]] == i
            assert pairs.edge_iou[chosen][mine].sum() == pytest.approx(w[r, k].sum(), abs=1e-9)
            assert mine.sum() == int((w[r, k] > 0).sum())
