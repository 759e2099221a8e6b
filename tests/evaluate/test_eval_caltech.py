"""The Caltech/CityPersons MR^-2: literal reference on random scenes and hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from eval_scenes import make_dets, make_record, random_set
from reference_caltech import caltech_reference

from crowdet.evaluate import evaluate
from crowdet.evaluate.caltech import CALTECH_SETUPS, CaltechSetup, caltech_metrics, setup_mr
from crowdet.evaluate.crowdhuman import MR_REFS

ANY = CaltechSetup("Any", (0, math.inf), (0, math.inf))


@pytest.mark.parametrize("seed", [0, 1])
def test_setups_match_the_literal_reference(seed):
    gt, dets = random_set(30, seed=seed, people=12, dets=40)
    got = caltech_metrics(gt, dets)
    assert list(got) == ["Reasonable", "Small", "Heavy", "All"]
    for setup in CALTECH_SETUPS:
        assert got[setup.name] == pytest.approx(
            caltech_reference(gt, dets, "full", setup), abs=1e-6
        )
    assert len(set(got.values())) == 4  # the setups differ


def test_iou_of_exactly_one_half_matches_unlike_crowdhuman():
    gt = [make_record("a", [[0, 0, 10, 10]])]
    found = {"a": make_dets([[0, 0, 10, 5]], [0.9])}  # inter 50, union 100
    assert setup_mr(gt, found, "full", ANY) == pytest.approx(1e-10)  # found at every point
    assert evaluate(gt, found, coco=False).MR == 1.0  # CrowdHuman: IoU must exceed 0.5


def test_people_outside_the_setup_become_ignore_regions():
    tall, short = [0, 0, 20, 100], [40, 0, 80, 45]  # heights 100 and 45
    gt = [make_record("a", [tall, short], height=200)]
    setup = CaltechSetup("Tall", (50, math.inf), (0, math.inf))
    inside = [50, 0, 60, 40]  # 40 px (kept: >= 50 / 1.25), inside the short person: IoU 400/1800
    found = {"a": make_dets([tall, inside], [0.9, 0.95])}
    # "Tall": the short person is an ignore region, the detection inside it is dropped
    assert setup_mr(gt, found, "full", setup) == pytest.approx(1e-10)
    # "Any": the short person is missed and the detection is a false positive: list FP, TP with
    # FPPI 1, 1: recall 0 below FPPI 1, 1/2 at 1
    assert setup_mr(gt, found, "full", ANY) == pytest.approx(0.5 ** (1 / 9))


def test_detections_outside_the_height_range_are_dropped():
    setup = CaltechSetup("Medium", (50, 80), (0, math.inf))  # detections kept within [40, 100)
    gt = [make_record(f"i{k}", [[0, 0, 20, 60]] if k == 0 else [], height=200) for k in range(10)]
    found = {
        f"i{k}": make_dets([[100, 0, 130, 39.9], [100, 0, 130, 100]], [0.9, 0.9]) for k in range(10)
    }
    found["i0"] = make_dets([[100, 0, 130, 39.9], [0, 0, 20, 60]], [0.9, 0.5])
    # every false positive is out of range: the list is one TP
    assert setup_mr(gt, found, "full", setup) == pytest.approx(1e-10)
    found["i1"] = make_dets([[100, 0, 130, 40]], [0.9])  # exactly 50 / 1.25: kept
    # list FP, TP with FPPI 0.1, 0.1: recall 0 below the point 0.1, 1 from it on
    assert setup_mr(gt, found, "full", setup) == pytest.approx(1e-10 ** (5 / 9))
    gt[3] = make_record("i3", [[0, 0, 20, 100]], height=200)  # a 100 px person is out of range
    assert setup_mr(gt[3:4], {}, "full", setup) == 1.0  # no person in range: 1, with a warning


def test_recall_is_read_at_the_last_position_with_fppi_at_or_below_each_point():
    gt = [make_record(f"i{k:03d}", [[10, 10, 30, 90]] if k < 20 else []) for k in range(100)]
    found, score = {}, 1.0
    for k in range(100):
        rows, scores = [], []
        if k < 10:
            rows.append([10, 10, 30, 90])
            scores.append(score)
            score -= 0.001
        rows.append([60, 0, 90, 90])
        scores.append(score)
        score -= 0.001
        found[f"i{k:03d}"] = make_dets(rows, scores)
    # TP1 FP1 TP2 FP2 ... TP10 FP10 FP11 ...: with K = floor(100 ref) FPs allowed, the last
    # position before FP K+1 holds min(K + 1, 10) TPs of 20 people
    ks = [math.floor(100 * ref + 1e-9) for ref in MR_REFS]
    assert ks == [1, 1, 3, 5, 10, 17, 31, 56, 100]
    miss = [1 - min(k + 1, 10) / 20 for k in ks]
    expected = math.exp(sum(math.log(m) for m in miss) / 9)
    assert setup_mr(gt, found, "full", ANY) == pytest.approx(expected, abs=1e-12)


def test_recall_is_zero_before_the_first_point():
    gt = [make_record(f"i{k}", [[10, 10, 30, 90]]) for k in range(10)]
    found = {"i0": make_dets([[60, 0, 90, 90], [10, 10, 30, 90]], [0.9, 0.8])}
    # FPPI starts at 0.1: the points below 0.1 have recall 0, the others 1/10
    miss = [1.0] * 4 + [0.9] * 5
    expected = math.exp(sum(math.log(m) for m in miss) / 9)
    assert setup_mr(gt, found, "full", ANY) == pytest.approx(expected)


def test_evaluate_reports_the_setups_separately_from_the_crowdhuman_mr():
    gt, dets = random_set(10, seed=4)
    r = evaluate(gt, dets, coco=False, caltech=True)
    assert set(r.to_json()["caltech"]) == {"Reasonable", "Small", "Heavy", "All"}
    assert r.MR not in r.caltech.values()
    assert np.isfinite(list(r.caltech.values())).all()
