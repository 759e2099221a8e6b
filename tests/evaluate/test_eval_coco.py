"""COCO metrics through faster-coco-eval against pycocotools (the library oracle)."""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
import pytest
from eval_scenes import make_dets, make_record, random_set

from crowdet.evaluate.coco import MAX_DETS, STAT_NAMES, coco_dt_list, coco_gt_dict, coco_metrics


def pycocotools_metrics(gt, dets, box_kind="full") -> dict[str, float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(coco_gt_dict(gt, box_kind))
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(coco_dt_list(gt, dets)))
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.maxDets = list(MAX_DETS)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: max(float(ev.stats[i]), 0.0) for i, name in STAT_NAMES.items()}


@pytest.mark.parametrize("kind", ["full", "visible"])
def test_faster_coco_eval_agrees_with_pycocotools(kind):
    gt, dets = random_set(12, seed=5, people=10, dets=40, kind=kind)
    ours = coco_metrics(gt, dets, kind)
    oracle = pycocotools_metrics(gt, dets, kind)
    assert set(ours) == {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR"}
    for key in ours:
        assert ours[key] == pytest.approx(oracle[key], abs=1e-4), key
    assert 0.05 < ours["AP"] < ours["AP50"] < 0.95


def test_ignore_regions_are_crowd_and_more_than_100_detections_count():
    # one person found at rank 150 of an image's detections: only counted with maxDets > 100
    gt = [make_record("a", [[0, 0, 10, 20], [50, 50, 99, 99]], ignore=[1])]
    noise = [[60 + (i % 30), 60, 62 + (i % 30), 62] for i in range(149)]  # inside the region
    boxes = noise + [[0, 0, 10, 20]]
    scores = np.linspace(0.9, 0.5, 150)
    d = {"a": make_dets(boxes, scores)}
    got = coco_metrics(gt, d)
    assert got["AR"] == pytest.approx(1.0) and got["AP"] == pytest.approx(1.0)
    assert coco_gt_dict(gt)["annotations"][1]["iscrowd"] == 1
