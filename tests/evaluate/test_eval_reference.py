"""The fast evaluator against the slow literal reference of METRICS.md on seeded crowded scenes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from eval_scenes import random_set
from reference_crowdhuman import hungarian_max, reference_metrics

from crowdet.evaluate import evaluate

TOL = 1e-6


def _compare(result, ref):
    assert result.AP == pytest.approx(ref["AP"], abs=TOL)
    assert result.MR == pytest.approx(ref["MR"], abs=TOL)
    assert result.JI == pytest.approx(ref["JI"], abs=TOL)
    np.testing.assert_allclose(result.mr_points, ref["mr_points"], atol=TOL)
    np.testing.assert_allclose(result.ji_curve, ref["ji_curve"], atol=TOL)
    np.testing.assert_allclose(result.recall, ref["recall"], atol=TOL)
    np.testing.assert_allclose(result.precision, ref["precision"], atol=TOL)
    np.testing.assert_allclose(result.fppi, ref["fppi"], atol=TOL)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", ["full", "visible", "head"])
def test_matches_reference_on_random_crowds(seed, kind):
    gt, dets = random_set(25, seed=seed, people=10, dets=30, kind=kind)
    result = evaluate(gt, dets, kind, coco=False)
    ref = reference_metrics(gt, dets, kind)
    assert len(ref["recall"]) > 100  # the scenes are not trivial
    assert 0.05 < ref["AP"] < 0.95 and 0.05 < ref["JI"] < 0.95
    _compare(result, ref)


def test_matches_reference_with_sizes_from_detection_file():
    gt, dets = random_set(20, seed=7, people=10, dets=30)
    rng = np.random.default_rng(7)
    sizes = {r.image_id: (int(rng.integers(100, 800)), int(rng.integers(100, 800))) for r in gt}
    result = evaluate(gt, dets, sizes=sizes, coco=False)
    _compare(result, reference_metrics(gt, dets, sizes=sizes))
    other = evaluate(gt, dets, coco=False)
    assert other.AP != pytest.approx(result.AP, abs=1e-3)  # the sizes are used


def test_matches_reference_with_float32_boxes_and_many_duplicates():
    gt, dets = random_set(15, seed=11, people=20, dets=80)
    dets = {
        k: (np.concatenate([b, b]).astype(np.float32), np.concatenate([s, s]).astype(np.float32))
        for k, (b, s) in dets.items()
    }
    _compare(evaluate(gt, dets, coco=False), reference_metrics(gt, dets))


def _brute_max_weight(w: list[list[float]]) -> float:
    n, m = len(w), len(w[0])
    best = 0.0
    for cols in itertools.permutations(range(m), n):
        best = max(best, sum(w[i][c] for i, c in enumerate(cols)))
    return best


@pytest.mark.parametrize("seed", range(20))
def test_reference_hungarian_is_a_maximum_weight_assignment(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5))
    m = int(rng.integers(n, 6))
    w = np.where(rng.random((n, m)) < 0.6, rng.uniform(0.5, 1, (n, m)), 0.0).tolist()
    assign = hungarian_max(w)
    assert sorted(assign) == list(range(n)) and len(set(assign.values())) == n
    assert sum(w[i][j] for i, j in assign.items()) == pytest.approx(_brute_max_weight(w))


def test_matches_reference_on_results_rounded_as_crowddet_writes_them():
    """CrowdDet's tools/test.py writes boxes with 1 decimal and scores with 5: exact IoU ties,
    and scores on the JI thresholds themselves (0.3 is not above 0.1 * 3)."""
    gt, dets = random_set(20, seed=11, people=10, dets=30)
    rng = np.random.default_rng(11)
    rounded = {}
    for image_id, (boxes, scores) in dets.items():
        scores = np.round(scores, 5)
        on_threshold = rng.random(len(scores)) < 0.2
        scores[on_threshold] = np.round(scores[on_threshold], 1)
        rounded[image_id] = (np.round(boxes, 1), scores)
    for r in gt:
        r.fbox = np.round(r.fbox, 1).astype(np.float32)
    result = evaluate(gt, rounded, coco=False)
    _compare(result, reference_metrics(gt, rounded))
