"""Recall of crowded people on hand-made images."""

from __future__ import annotations

import math

import numpy as np

from crowdet.data.records import ImageRecord
from crowdet.evaluate.crowd_recall import crowd_recall, crowded


def record(image_id, boxes, ignore=None):
    boxes = np.asarray(boxes, np.float32)
    ignore = np.zeros(len(boxes), bool) if ignore is None else np.asarray(ignore)
    return ImageRecord(image_id=image_id, width=200, height=200, fbox=boxes, ignore=ignore)


A, B = [0.0, 0, 10, 20], [2.0, 0, 12, 20]  # IoU 160 / 240 = 0.67
C = [100.0, 100, 110, 120]  # alone
D = [5.0, 0, 15, 20]  # IoU with A 100 / 300 = 0.33, with B 140 / 260 = 0.54


def test_crowded_marks_the_boxes_overlapping_another_above_the_threshold():
    assert crowded(np.array([A, B, C], float)).tolist() == [True, True, False]
    assert crowded(np.array([A, D], float)).tolist() == [False, False]  # 0.33
    assert crowded(np.array([A], float)).tolist() == [False]


def test_recall_counts_the_crowded_people_a_detection_matches():
    gt = [record("x", [A, B, C]), record("y", [A, D, B])]
    dets = {
        "x": (np.array([A, C], float), np.array([0.9, 0.8])),  # B, crowded, missed
        "y": (np.array([B, A], float), np.array([0.9, 0.5])),  # B and A found, D missed
    }
    r = crowd_recall(gt, dets)
    # crowded: x: A, B; y: A (0.67 with B), B (0.67 with A), D (0.54 with B)
    assert r.people == 5 and r.found == 3 and math.isclose(r.recall, 3 / 5)


def test_ignore_regions_are_not_people_and_no_crowd_gives_nan():
    gt = [record("x", [A, B, C], ignore=[False, True, False])]
    r = crowd_recall(gt, {"x": (np.array([C], float), np.array([0.9]))})
    assert r.people == 0 and math.isnan(r.recall)
