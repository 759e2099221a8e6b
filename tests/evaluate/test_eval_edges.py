"""Edge cases (defined values, never a crash), input errors, and invariance properties."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from eval_scenes import make_dets as dets
from eval_scenes import make_record as record
from eval_scenes import random_set
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from reference_crowdhuman import reference_metrics

from crowdet.errors import CrowdetError
from crowdet.evaluate import evaluate
from crowdet.evaluate.matching import clip_boxes, pairwise_iou


def run(gt, found, **kw):
    return evaluate(gt, found, coco=False, **kw)


def test_no_detections_at_all_gives_ap_0_mr_1_ji_0_with_a_warning(caplog):
    gt, _ = random_set(5, seed=0)
    with caplog.at_level(logging.WARNING):
        r = evaluate(gt, {}, caltech=True)
    assert (r.AP, r.MR, r.JI) == (0.0, 1.0, 0.0)
    assert r.coco["AP"] == 0.0 and set(r.caltech.values()) == {1.0}
    assert "no detections" in caplog.text
    assert r.num_dets == 0 and len(r.recall) == 0


def test_images_without_gt_are_evaluated_and_their_detections_are_false_positives():
    gt = [record("a", [[0, 0, 10, 20]]), record("empty", [])]
    found = {"a": dets([[0, 0, 10, 20]], [0.5]), "empty": dets([[0, 0, 10, 20]], [0.9])}
    r = run(gt, found)
    np.testing.assert_allclose(r.precision, [0, 0.5])
    np.testing.assert_allclose(r.fppi, [0.5, 0.5])
    assert r.JI == pytest.approx((1 / (1 + 1e-6) + 0) / 2)


def test_no_valid_gt_anywhere_gives_recall_zero_with_a_warning(caplog):
    gt = [record("a", [[0, 0, 50, 50]], ignore=[0])]  # an all-ignore image
    found = {"a": dets([[10, 10, 40, 40], [60, 60, 90, 90]], [0.9, 0.8])}
    with caplog.at_level(logging.WARNING):
        r = run(gt, found)
    assert "no non-ignored ground truth" in caplog.text
    assert len(r.recall) == 1  # the detection in the ignore region is dropped
    assert (r.AP, r.MR, r.num_gt, r.num_ignore) == (0.0, 1.0, 0, 1)
    assert r.JI == 0.0 and np.isfinite(r.to_json()["MR"])


def test_a_thousand_detections_in_one_image():
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 900, (60, 2))
    gt_boxes = np.concatenate([xy, xy + rng.uniform(20, 100, (60, 2))], 1)
    pick = gt_boxes[rng.integers(0, 60, 1000)]
    boxes = pick + rng.normal(0, 3, pick.shape)
    gt = [record("a", gt_boxes, width=1000, height=1000)]
    found = {"a": dets(boxes, rng.random(1000))}
    r = run(gt, found)
    ref = reference_metrics(gt, found, ji=False)
    assert r.num_dets == 1000
    assert r.AP == pytest.approx(ref["AP"], abs=1e-9) and r.MR == pytest.approx(ref["MR"])
    # JI at threshold 0: k from a dense assignment on the whole image (library oracle)
    from scipy.optimize import linear_sum_assignment

    iou = pairwise_iou(clip_boxes(boxes, 1000, 1000), clip_boxes(gt_boxes, 1000, 1000))
    w = np.where(iou > 0.5, iou, 0)
    rows, cols = linear_sum_assignment(w, maximize=True)
    k = int((w[rows, cols] > 0).sum())
    assert r.ji_curve[0] == pytest.approx(k / (60 + 1000 - k + 1e-6))


def test_rows_without_a_box_of_the_kind_are_not_gt():
    rec = record("a", [[0, 0, 10, 20], [20, 0, 30, 20]])
    rec.vbox[1] = np.nan
    r = run([rec], {"a": dets([[0, 0, 10, 20]], [0.9])}, box_kind="visible")
    assert r.num_gt == 1 and r.AP == 0.0 and r.recall.tolist() == [1.0]


def test_input_errors_name_the_image():
    gt = [record("a", [[0, 0, 10, 20]])]
    with pytest.raises(CrowdetError, match="'zzz'.*not in the ground truth"):
        run(gt, {"zzz": dets([[0, 0, 1, 1]], [0.5])})
    with pytest.raises(CrowdetError, match="duplicate image ID 'a'"):
        run(gt + gt, {})
    with pytest.raises(CrowdetError, match="unknown box kind"):
        run(gt, {}, box_kind="torso")
    with pytest.raises(CrowdetError, match="image 'a'.*boxes \\(N, 4\\)"):
        run(gt, {"a": (np.zeros((2, 5)), np.zeros(2))})
    with pytest.raises(CrowdetError, match="image 'a'.*not finite"):
        run(gt, {"a": dets([[0, 0, np.nan, 1]], [0.5])})
    unsized = [record("b", [[0, 0, 10, 20]], width=0, height=0)]
    with pytest.raises(CrowdetError, match="image 'b': size unknown"):
        run(unsized, {})
    assert run(unsized, {}, sizes={"b": (50, 50)}).num_gt == 1


def _distinct_scores(found, rng):
    """The same detections with scores made distinct across the whole set."""
    total = sum(len(s) for _, s in found.values())
    pool = iter(rng.permutation(total) / total)
    return {k: (b, np.array([next(pool) for _ in s])) for k, (b, s) in found.items()}


def _same(a, b):
    assert (a.AP, a.MR, a.JI) == pytest.approx((b.AP, b.MR, b.JI), abs=1e-12)


SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(seed=st.integers(0, 10_000), perm_seed=st.integers(0, 10_000))
def test_permuting_images_or_detections_changes_nothing(seed, perm_seed):
    gt, found = random_set(8, seed=seed, people=8, dets=20)
    rng = np.random.default_rng(perm_seed)
    found = _distinct_scores(found, rng)
    base = run(gt, found)
    order = rng.permutation(len(gt))
    shuffled_gt = [gt[i] for i in order]
    keys = list(found)
    shuffled = {keys[i]: found[keys[i]] for i in rng.permutation(len(keys))}
    _same(run(shuffled_gt, shuffled), base)
    within = {}
    for k, (b, s) in found.items():
        p = rng.permutation(len(s))
        within[k] = (b[p], s[p])
    _same(run(gt, within), base)


@SETTINGS
@given(seed=st.integers(0, 10_000), score=st.floats(0, 1), which=st.integers(0, 1_000))
def test_a_detection_inside_an_ignore_region_changes_nothing(seed, score, which):
    gt, found = random_set(6, seed=seed, people=8, dets=20, ignore_rate=1.0)
    rec = gt[which % len(gt)]
    regions = rec.fbox[rec.ignore].astype(np.float64)
    assume(len(regions) > 0)
    region = clip_boxes(regions[:1], rec.width, rec.height)
    people = clip_boxes(rec.fbox[~rec.ignore], rec.width, rec.height)
    area = (region[0, 2] - region[0, 0]) * (region[0, 3] - region[0, 1])
    assume(area > 1 and (len(people) == 0 or pairwise_iou(region, people).max() <= 0.5))
    base = run(gt, found)
    boxes, scores = found.get(rec.image_id, (np.zeros((0, 4)), np.zeros(0)))
    more = dict(found)
    more[rec.image_id] = (np.concatenate([boxes, regions[:1]]), np.append(scores, score))
    _same(run(gt, more), base)
