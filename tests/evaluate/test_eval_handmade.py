"""Hand-computed cases for AP, MR^-2, JI and the matching rules, expected values as formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from eval_scenes import make_dets as dets
from eval_scenes import make_record as record

from crowdet.evaluate import evaluate
from crowdet.evaluate.crowdhuman import MR_REFS

EPS = 1e-6


def run(gt, found, **kw):
    return evaluate(gt, found, coco=False, **kw)


def test_perfect_detector_scores_one_minus_one_over_n():
    n = 5
    boxes = [[10 * i, 10, 10 * i + 8, 60] for i in range(n)]
    scores = [0.99 - 0.01 * i for i in range(n)]
    r = run([record("a", boxes)], {"a": dets(boxes, scores)})
    assert r.AP == pytest.approx(1 - 1 / n, abs=1e-12)
    # FPPI never reaches a reference point: the last position's miss rate, 0, floored at 1e-10.
    assert r.MR == pytest.approx(1e-10, rel=1e-9)
    np.testing.assert_allclose(r.ji_curve, n / (n + n - n + EPS))
    assert r.num_gt == n and r.num_dets == n and r.num_images == 1


def test_three_gt_four_dets_ap_is_a_sum_of_trapezoids():
    gt = [[0, 0, 10, 20], [20, 0, 30, 20], [40, 0, 50, 20]]
    found = dets(
        [[0, 0, 10, 20], [60, 60, 70, 80], [20, 0, 30, 20], [40, 0, 50, 20]], [0.9, 0.8, 0.7, 0.6]
    )
    r = run([record("a", gt)], {"a": found})
    # TP, FP, TP, TP: recall 1/3, 1/3, 2/3, 1; precision 1, 1/2, 2/3, 3/4
    expected = 0 * (1 + 1 / 2) / 2 + (1 / 3) * (1 / 2 + 2 / 3) / 2 + (1 / 3) * (2 / 3 + 3 / 4) / 2
    assert r.AP == pytest.approx(expected, abs=1e-12)
    np.testing.assert_allclose(r.recall, [1 / 3, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(r.precision, [1, 1 / 2, 2 / 3, 3 / 4])


def test_mr_uses_the_first_position_at_or_past_each_fppi_point():
    # 100 images, GT in images 0..19; the list alternates TP, FP for 10 TPs, then 90 more FPs.
    gt = [record(f"i{k:03d}", [[10, 10, 30, 60]] if k < 20 else []) for k in range(100)]
    found: dict = {}
    score = 1.0
    for k in range(100):
        rows, scores = [], []
        if k < 10:
            rows.append([10, 10, 30, 60])
            scores.append(score)
            score -= 0.001
        rows.append([60, 60, 90, 90])  # a false positive in every image
        scores.append(score)
        score -= 0.001
        found[f"i{k:03d}"] = dets(rows, scores)
    r = run(gt, found)
    # the k-th FP gives FPPI k/100; ref r is first reached at k = ceil(100 r); TPs so far min(k, 10)
    ks = [math.ceil(100 * ref - 1e-9) for ref in MR_REFS]
    assert ks == [1, 2, 4, 6, 10, 18, 32, 57, 100]
    miss = [1 - min(k, 10) / 20 for k in ks]
    np.testing.assert_allclose(r.mr_points, miss)
    assert r.MR == pytest.approx(math.exp(sum(math.log(m) for m in miss) / 9), abs=1e-12)


def test_mr_takes_the_last_position_when_fppi_never_reaches_a_point():
    gt = [record(f"i{k}", [[10, 10, 30, 60]]) for k in range(10)]
    found = {"i0": dets([[10, 10, 30, 60], [60, 60, 90, 90]], [0.9, 0.8])}  # FPPI ends at 0.1
    r = run(gt, found)
    np.testing.assert_allclose(r.mr_points, [0.9] * 4 + [0.9] * 5)
    assert r.MR == pytest.approx(0.9)


def _greedy_vs_maximum_case():
    # all boxes 10 px tall; A = [0, 10], B = [4, 14]; d1 = [1, 11] (IoU 90/110 with A, 70/130
    # with B), d2 = A (IoU 1 with A, 60/140 with B).
    gt = [record("a", [[0, 0, 10, 10], [4, 0, 14, 10]])]
    found = {"a": dets([[1, 0, 11, 10], [0, 0, 10, 10]], [0.9, 0.8])}
    return gt, found


def test_greedy_matching_takes_the_best_free_gt_in_score_order():
    gt, found = _greedy_vs_maximum_case()
    r = run(gt, found)
    # d1 takes A (IoU .82 > .54); d2 finds A used and B at IoU .43: a false positive
    np.testing.assert_allclose(r.recall, [0.5, 0.5])
    np.testing.assert_allclose(r.precision, [1, 0.5])
    assert r.AP == pytest.approx(0.0)


def test_ji_uses_a_maximum_weight_matching_not_the_greedy_one():
    gt, found = _greedy_vs_maximum_case()
    r = run(gt, found)
    # d1-B (.54) + d2-A (1.0) beats d1-A (.82) alone: k = 2, m = n = 2
    np.testing.assert_allclose(r.ji_curve[:8], 2 / (2 + 2 - 2 + EPS))
    np.testing.assert_allclose(r.ji_curve[8:], [1 / (2 + 1 - 1 + EPS), 0])  # d2 (0.8) drops


def test_ji_removes_unmatched_boxes_in_ignore_regions_from_m_and_n():
    gt = [
        record(
            "a",
            [[0, 0, 10, 20], [20, 0, 30, 20], [40, 0, 50, 20], [62, 2, 68, 18], [60, 0, 90, 30]],
            ignore=[4],
        )
    ]
    found = {
        "a": dets(
            [[0, 0, 10, 20], [20, 0, 30, 20], [70, 5, 80, 15], [0, 50, 10, 70]],
            [0.95, 0.85, 0.55, 0.15],
        )
    }
    r = run(gt, found)
    # valid GT: 4, one of them (box 3) unmatched inside the ignore region -> m = 3
    # dets: 2 matched, one inside the ignore region (dropped from n), one FP (score 0.15)
    # t < 0.15: k = 2, n = 4 - 1, m = 3; 0.15 <= t < 0.55: n = 2; later the matches drop out
    expected = [2 / (3 + 3 - 2 + EPS)] * 2 + [2 / (3 + 2 - 2 + EPS)] * 4
    expected += [2 / (3 + 2 - 2 + EPS)] * 3 + [1 / (3 + 1 - 1 + EPS)]
    np.testing.assert_allclose(r.ji_curve, expected)
    assert r.JI == pytest.approx(2 / 3, abs=1e-6)


def test_ji_averages_over_images_with_boxes_only():
    gt = [record("a", [[0, 0, 10, 20]]), record("empty", []), record("b", [[0, 0, 10, 20]])]
    found = {"a": dets([[0, 0, 10, 20]], [0.9]), "b": dets([[50, 50, 60, 70]], [0.9])}
    r = run(gt, found)
    # image a: 1 / (1 + 1 - 1); image b: 0 / (1 + 1); the empty image does not count
    assert r.JI == pytest.approx((1 / (1 + EPS) + 0) / 2)


def test_ignore_match_is_by_ioa_over_the_detection_area():
    gt = [record("a", [[0, 0, 10, 20], [40, 40, 60, 60]], ignore=[1])]
    inside = [42, 42, 58, 58]  # IoA 1 over its own area
    covering = [30, 30, 80, 80]  # covers the region: IoA over the region 1, over itself 0.16
    r_in = run(gt, {"a": dets([[0, 0, 10, 20], inside], [0.9, 0.8])})
    r_cover = run(gt, {"a": dets([[0, 0, 10, 20], covering], [0.9, 0.8])})
    assert len(r_in.recall) == 1 and r_in.AP == 0.0  # dropped: the list holds the TP only
    np.testing.assert_allclose(r_cover.precision, [1, 0.5])  # a false positive


def test_iou_must_be_strictly_above_one_half():
    gt = [record("a", [[0, 0, 10, 10]])]
    half = run(gt, {"a": dets([[0, 0, 10, 5]], [0.9])})  # inter 50, union 100
    above = run(gt, {"a": dets([[0, 0, 10, 5.1]], [0.9])})  # 51 / 100
    assert half.precision.tolist() == [0.0] and above.precision.tolist() == [1.0]


def test_clipping_uses_w_minus_one_for_x1_and_w_for_x2():
    # a GT wholly right of a 100 px image clips to [99, 0, 100, 10]; a detection there matches
    gt = [record("a", [[105, 0, 120, 10], [0, 0, 10, 10]], width=100, height=50)]
    r = run(gt, {"a": dets([[99, 0, 100, 10]], [0.9])})
    assert r.precision.tolist() == [1.0]
    # partly outside: [90, 0, 130, 10] clips to [90, 0, 100, 10], equal to the detection
    gt = [record("b", [[90, 0, 130, 10]], width=100, height=50)]
    assert run(gt, {"b": dets([[90, 0, 100, 10]], [0.9])}).precision.tolist() == [1.0]
    assert run(gt, {"b": dets([[90, 0, 100, 10]], [0.9])}, sizes={"b": (200, 50)}).AP == 0.0


def test_ties_in_score_keep_the_gt_file_order():
    gt = [record("a", [[0, 0, 10, 20]]), record("b", [[0, 0, 10, 20]])]
    found = {"a": dets([[0, 0, 10, 20]], [0.5]), "b": dets([[50, 50, 60, 70]], [0.5])}
    # a first: TP, FP -> recall .5, .5: AP 0; b first: FP, TP -> .5 * (0 + .5) / 2
    assert run(gt, found).AP == pytest.approx(0.0)
    assert run(gt[::-1], found).AP == pytest.approx(0.5 * (0 + 0.5) / 2)


def test_ties_within_an_image_keep_the_detection_order():
    gt = [record("a", [[0, 0, 10, 20], [4, 0, 14, 20]])]
    # both detections overlap GT 0 best; with equal scores the first listed takes it
    first = [[0, 0, 10, 20], [1, 0, 11, 20]]  # the first matches GT 0, the second GT 1 (IoU .54)
    found = {"a": dets(first, [0.5, 0.5])}
    assert run(gt, found).precision.tolist() == [1.0, 1.0]
    swapped = {"a": dets(first[::-1], [0.5, 0.5])}  # [1, 11] takes GT 0; [0, 10] finds GT 1 at .43
    assert run(gt, swapped).precision.tolist() == [1.0, 0.5]


def test_miss_rate_by_visibility_and_height_bins():
    full = [[0, 0, 20, 60], [40, 0, 60, 150]]
    visible = [[0, 0, 20, 60], [40, 0, 60, 30]]  # fractions 1.0 and 0.2
    gt = [record("a", full, vbox=visible, height=200)]
    r = run(gt, {"a": dets([[0, 0, 20, 60]], [0.9])})  # finds the fully visible one only
    occ = r.occlusion
    assert occ.counts.tolist() == [1, 0, 1] and occ.labels()[-1] == "[0.7, 1]"
    np.testing.assert_allclose(occ.mr, [1.0, 1.0, 1e-10])  # an empty bin scores 1
    np.testing.assert_allclose(occ.final_miss, [1.0, 1.0, 0.0])
    assert r.height.counts.tolist() == [0, 1, 1, 0, 0]  # heights 60 and 150
    np.testing.assert_allclose(r.height.mr[1:3], [1e-10, 1.0])
