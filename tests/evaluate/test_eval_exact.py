"""`eval-dets` against the CrowdDet evaluator's arithmetic on hand-made files (written as JSON,
so the boxes are exactly what the reference reads)."""

from __future__ import annotations

import json

import pytest

from crowdet.cli import main

EPS = 1e-6


def _person(xywh):
    return {"tag": "person", "fbox": xywh, "extra": {"box_id": 0, "occ": 0}}


def _write(tmp_path, images):
    """images: (ID, GT xywh list, detection (xywh, score) list), all 100 x 100 pixels."""
    with open(tmp_path / "gt.odgt", "w") as g, open(tmp_path / "dt.odgt", "w") as d:
        for image_id, gt, dets in images:
            g.write(json.dumps({"ID": image_id, "gtboxes": [_person(b) for b in gt]}) + "\n")
            dt = [{"box": b, "score": s, "tag": 1} for b, s in dets]
            line = {"ID": image_id, "width": 100, "height": 100, "dtboxes": dt}
            d.write(json.dumps(line) + "\n")


def _metrics(tmp_path):
    out = tmp_path / "out"
    args = ["eval-dets", "--gt", str(tmp_path / "gt.odgt"), "--dt", str(tmp_path / "dt.odgt")]
    assert main([*args, "--no-coco", "--out", str(out)]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_fractional_gt_at_the_iou_boundary_is_compared_in_float64(tmp_path):
    # Image a: GT x 0.1..10.3, detection 3.5..13.7 (height 10 both): IoU = 6.8 / 13.6 = 0.5 in
    # reals, just below with the +1e-6, so no match (k 0, m 1, n 1), as in the reference's
    # float64. With GT stored as float32 (10.3 -> 10.300000190734863) it passed 0.5.
    # Image b: a perfect match.
    _write(
        tmp_path,
        [
            ("a", [[0.1, 0.0, 10.2, 10.0]], [([3.5, 0.0, 10.2, 10.0], 0.9)]),
            ("b", [[20.0, 20.0, 10.0, 10.0]], [([20.0, 20.0, 10.0, 10.0], 0.9)]),
        ],
    )
    metrics = _metrics(tmp_path)
    assert metrics["JI"] == pytest.approx((0 + 1 / (1 + EPS)) / 2, abs=1e-12)
    # AP: detections at 0.9 (b's TP and a's FP tie; GT order puts a first): FP then TP,
    # recall 0 -> 1/2 at precision 0 -> 1/2.
    assert metrics["AP"] == pytest.approx(0.5 * (0 + 0.5) / 2, abs=1e-12)


def test_ji_mean_leaves_out_images_with_nothing_counted(tmp_path):
    # Image a: k 1, m 1, n 1. Image b: a person inside an ignore region, unmatched, and no
    # detection: m 0, n 0, left out of the mean. Image c: one person missed: k 0, m 1, n 0.
    _write(
        tmp_path, [("a", [[10, 10, 20, 40]], [([10, 10, 20, 40], 0.9)]), ("c", [[5, 5, 9, 9]], [])]
    )
    with open(tmp_path / "gt.odgt", "a") as g:
        mask = {"tag": "mask", "fbox": [10, 10, 30, 30], "extra": {"box_id": 1, "occ": 0}}
        g.write(json.dumps({"ID": "b", "gtboxes": [_person([12, 12, 10, 10]), mask]}) + "\n")
    with open(tmp_path / "dt.odgt", "a") as d:
        d.write(json.dumps({"ID": "b", "width": 100, "height": 100, "dtboxes": []}) + "\n")
    assert _metrics(tmp_path)["JI"] == pytest.approx((1 / (1 + EPS) + 0) / 2, abs=1e-12)


def test_ji_is_a_maximum_total_iou_matching_not_a_maximum_cardinality_one(tmp_path):
    # 1-D boxes of length 50 on a path g0-d1-g1-d2-g2-d3: neighbours 16 apart (IoU 34/66) or 1
    # apart (IoU 49/51). Two pairs at 49/51 outweigh three at 34/66: k 2, m 3, n 3.
    gt = [[0, 0, 50, 10], [17, 0, 50, 10], [34, 0, 50, 10]]
    dets = [([16, 0, 50, 10], 0.9), ([33, 0, 50, 10], 0.9), ([50, 0, 50, 10], 0.9)]
    _write(tmp_path, [("a", gt, dets)])
    assert _metrics(tmp_path)["JI"] == pytest.approx(2 / (3 + 3 - 2 + EPS), abs=1e-12)


@pytest.mark.parametrize("out_name", ["file", "file/sub"])
def test_out_naming_a_file_is_a_one_line_error_naming_it(tmp_path, capsys, out_name):
    _write(tmp_path, [("a", [[10, 10, 20, 40]], [([10, 10, 20, 40], 0.9)])])
    (tmp_path / "file").write_text("not a folder")
    args = ["eval-dets", "--gt", str(tmp_path / "gt.odgt"), "--dt", str(tmp_path / "dt.odgt")]
    assert main([*args, "--no-coco", "--out", str(tmp_path / out_name)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{tmp_path / 'file'}: is a file" in err
    assert (tmp_path / "file").read_text() == "not a folder"
