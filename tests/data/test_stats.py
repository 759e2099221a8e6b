"""Dataset statistics: overlap pairs against a slow reference, visible fraction, levels, totals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crowdet.data.records import ImageRecord
from crowdet.data.stats import (
    count_overlap_pairs,
    dataset_stats,
    occlusion_levels,
    plot_stats,
    visible_fraction,
)


def slow_pairs(boxes, t):
    """Obviously-correct double loop over pairs."""
    count = 0
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            a, b = boxes[i], boxes[j]
            iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            inter = iw * ih
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            count += inter / union > t
    return count


@pytest.mark.parametrize("seed", range(5))
def test_count_overlap_pairs_matches_slow_reference(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 40))
    xy = rng.uniform(0, 100, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(10, 60, (n, 2))], 1).astype(np.float32)
    # add near-duplicates so that high-IoU pairs exist
    boxes = np.concatenate([boxes, boxes[: n // 3] + rng.uniform(-2, 2, (n // 3, 4))])
    boxes = boxes.astype(np.float32)
    b64 = boxes.astype(np.float64)
    assert count_overlap_pairs(boxes) == [slow_pairs(b64, 0.5), slow_pairs(b64, 0.7)]


def test_count_overlap_pairs_hand_made():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 8], [0, 0, 10, 6], [50, 50, 60, 60]], np.float32)
    # IoU(0,1) = 80/100 = 0.8, IoU(0,2) = 0.6, IoU(1,2) = 60/80 = 0.75, box 3 overlaps nothing
    assert count_overlap_pairs(boxes) == [3, 2]
    assert count_overlap_pairs(boxes[:1]) == [0, 0] and count_overlap_pairs(np.zeros((0, 4))) == [
        0,
        0,
    ]


def test_visible_fraction_and_levels():
    f = np.array([[0, 0, 10, 20], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 4, 4]], np.float32)
    v = np.array([[0, 0, 10, 10], [-5, -5, 20, 20], [np.nan] * 4, [0, 0, 4, 0.5]], np.float32)
    frac = visible_fraction(f, v)
    # half; visible box larger than the full box is clipped to it -> 1; absent -> NaN; 2/16
    np.testing.assert_allclose(frac[[0, 1, 3]], [100 / 200, 1.0, (4 * 0.5) / 16])
    assert math.isnan(frac[2])
    assert occlusion_levels(frac) == {"bare": 1, "partial": 0, "heavy": 1, "severe": 1}


def rec(image_id, fbox, ignore, vbox=None):
    n = len(fbox)
    fbox = np.array(fbox, np.float32).reshape(n, 4)
    return ImageRecord(
        image_id,
        fbox=fbox,
        vbox=np.array(vbox, np.float32).reshape(n, 4) if vbox is not None else fbox.copy(),
        hbox=np.full((n, 4), np.nan, np.float32),
        ignore=np.array(ignore, bool),
        head_ignore=np.zeros(n, bool),
        box_ids=np.arange(n),
        occ=np.zeros(n, np.float32),
    )


def test_dataset_stats_totals(tmp_path):
    crowd = np.array([[i, 0, i + 10, 30] for i in range(0, 5000, 8)], np.float32)  # 625 people
    records = [
        rec("a", [[0, 0, 10, 10], [0, 0, 10, 8], [0, 0, 100, 100]], [False, False, True]),
        rec("b", [], []),
        rec("c", [[0, 0, 5, 5]], [True]),
        rec("d", crowd, np.zeros(len(crowd), bool)),
    ]
    s = dataset_stats(records)
    assert (s["images"], s["people"], s["ignore_regions"]) == (4, 2 + 625, 2)
    assert s["images_without_people"] == 2 and s["images_with_500_plus_people"] == 1
    # neighbours in the crowd: IoU = (10-8)*30 / (2*300 - 60) = 1/9 -> no pair above 0.5
    assert s["pairs_iou_over_0.5"]["total"] == 1 and s["pairs_iou_over_0.7"]["total"] == 1
    assert s["people_per_image"]["max"] == 625
    assert s["people_per_image"]["histogram"]["counts"] == [2, 0, 1, 0, 0, 0, 0, 0, 0, 1]
    assert s["full_box_height"]["max"] == 30 and s["visible_fraction"]["levels"]["bare"] == 627
    paths = plot_stats(s, tmp_path / "stats")
    assert [p.name for p in paths] == [
        "stats_people_per_image.png",
        "stats_visible_fraction.png",
        "stats_box_height.png",
    ]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_dataset_stats_empty():
    s = dataset_stats([])
    assert s["images"] == 0 and s["people"] == 0 and s["pairs_iou_over_0.5"]["total"] == 0
