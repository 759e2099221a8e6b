"""CityPersons reader: the `.mat` (written with scipy.io.savemat) and the COCO-style json."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io

from crowdet.data.citypersons import read_citypersons, read_citypersons_report
from crowdet.errors import DataError

# class, x, y, w, h, instance_id, x_vis, y_vis, w_vis, h_vis
BBS = np.array(
    [
        [1, 100, 200, 40, 100, 24001, 105, 210, 30, 60],
        [2, 300, 210, 50, 110, 24002, 300, 210, 50, 110],
        [0, 500, 400, 100, 50, 0, 500, 400, 100, 50],
        [3, 700, 100, 20, 60, 24003, 0, 0, 0, 0],
        [5, 800, 400, 100, 40, 0, 800, 400, 100, 40],
    ],
    np.float64,
)


def write_mat(path, cells, name="anno_val_aligned"):
    cell = np.empty((1, len(cells)), dtype=object)
    for i, c in enumerate(cells):
        cell[0, i] = c
    scipy.io.savemat(str(path), {name: cell})
    return path


def cells():
    return [
        {"cityname": "frankfurt", "im_name": "frankfurt_000000_000294_leftImg8bit.png", "bbs": BBS},
        {"cityname": "lindau", "im_name": "lindau_000001_000019_leftImg8bit.png", "bbs": BBS[:1]},
        {
            "cityname": "munster",
            "im_name": "munster_000002_000019_leftImg8bit.png",
            "bbs": np.zeros((0, 10)),
        },
    ]


def test_mat_classes_boxes_and_paths(tmp_path):
    path = write_mat(tmp_path / "anno_val.mat", cells())
    a, b, c = read_citypersons(path, images_dir=tmp_path / "leftImg8bit" / "val")
    assert a.image_id == "frankfurt_000000_000294_leftImg8bit"
    assert a.image_path == str(
        tmp_path / "leftImg8bit" / "val" / "frankfurt" / "frankfurt_000000_000294_leftImg8bit.png"
    )
    x, y, w, h = BBS[:, 1], BBS[:, 2], BBS[:, 3], BBS[:, 4]
    np.testing.assert_array_equal(a.fbox, np.stack([x, y, x + w, y + h], 1))
    np.testing.assert_array_equal(a.vbox[0], [105, 210, 105 + 30, 210 + 60])
    assert np.isnan(a.vbox[3]).all()  # zero-size visible box -> absent
    assert a.ignore.tolist() == [False, True, True, True, True]
    assert a.box_ids.tolist() == [24001, 24002, 0, 24003, 0]
    assert len(b) == 1 and b.ignore.tolist() == [False]  # one-row table
    assert len(c) == 0
    (a2, *_), report = read_citypersons_report(path, person_classes=(1, 2, 3))
    assert a2.ignore.tolist() == [False, False, True, False, True]
    assert report.count("empty") == 1


def test_mat_bad_rows_and_fields(tmp_path):
    bad = BBS.copy()
    bad[1, 3] = 0
    data = cells()
    data[0]["bbs"] = bad
    path = write_mat(tmp_path / "bad.mat", data)
    with pytest.raises(DataError, match=r"bad\.mat:1: image 1 .* row 1: box has zero") as info:
        read_citypersons(path, strict=True)
    assert info.value.kind == "invalid box"
    recs, report = read_citypersons_report(path)
    assert len(recs[0]) == 4 and report.count("invalid box") == 1
    data = cells()
    data[1] = {"cityname": "lindau", "bbs": BBS}
    data[2]["bbs"] = np.zeros((2, 5))
    recs, report = read_citypersons_report(write_mat(tmp_path / "f.mat", data))
    assert len(recs) == 1 and report.count("corrupt") == 2
    assert "image 2: needs 'cityname', 'im_name' and 'bbs'" in str(report.problems[0])
    assert "bbs must have 10 columns" in str(report.problems[1])
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(DataError, match="junk.mat"):
        read_citypersons(tmp_path / "junk.mat")


def test_coco_style_json(tmp_path):
    data = {
        "images": [{"id": 1, "im_name": "a_leftImg8bit.png", "height": 1024, "width": 2048}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [10, 20, 41, 100],
                "vis_bbox": [12, 22, 20, 50],
                "height": 100,
                "vis_ratio": 0.24,
                "ignore": 0,
            },
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [5, 5, 5, 5], "ignore": 1},
        ],
        "categories": [{"id": 1, "name": "pedestrian"}],
    }
    path = tmp_path / "val_gt.json"
    path.write_text(json.dumps(data))
    (rec,) = read_citypersons(path)
    np.testing.assert_array_equal(rec.fbox, [[10, 20, 51, 120], [5, 5, 10, 10]])
    np.testing.assert_array_equal(rec.vbox[0], [12, 22, 32, 72])
    assert rec.ignore.tolist() == [False, True] and rec.image_id == "a_leftImg8bit"
