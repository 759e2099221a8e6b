"""Detection files: round trips, both formats, and errors naming the file and line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from crowdet.errors import DataError
from crowdet.evaluate.detfile import read_detections, write_crowdhuman_dets


def test_crowdhuman_lines_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 500, (7, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 90, (7, 2))], 1).astype(np.float32)
    dets = {"a": (boxes, rng.random(7)), "b": (np.zeros((0, 4)), np.zeros(0))}
    path = tmp_path / "dt.json"
    write_crowdhuman_dets(path, dets, {"a": (640, 480)})
    back = read_detections(path)
    assert back.format == "crowdhuman" and list(back.dets) == ["a", "b"]
    np.testing.assert_array_equal(back.dets["a"][0], boxes.astype(np.float64))
    np.testing.assert_array_equal(back.dets["a"][1], dets["a"][1])
    assert back.dets["b"][0].shape == (0, 4)
    assert back.sizes == {"a": (640, 480)} and back.lines == {"a": 1, "b": 2}
    first = json.loads(path.read_text().splitlines()[0])
    assert first["dtboxes"][0]["tag"] == 1 and len(first["dtboxes"][0]["box"]) == 4


def test_box_is_xywh_and_x_plus_w_is_taken_in_float64(tmp_path):
    path = tmp_path / "dt.odgt"
    line = {
        "ID": "x",
        "width": 10,
        "height": 10,
        "dtboxes": [{"box": [0.1, 0.2, 0.7, 3], "score": 1}],
    }
    path.write_text(json.dumps(line) + "\n\n")
    boxes, scores = read_detections(path).dets["x"]
    assert boxes.tolist() == [[0.1, 0.2, 0.1 + 0.7, 0.2 + 3]] and scores.tolist() == [1.0]


def test_a_json_list_of_crowdhuman_records_is_read(tmp_path):
    path = tmp_path / "dt.json"
    items = [{"ID": "a", "width": 5, "height": 6, "dtboxes": [{"box": [1, 1, 2, 2], "score": 0.5}]}]
    path.write_text(json.dumps(items))
    got = read_detections(path)
    assert got.format == "crowdhuman" and got.sizes == {"a": (5, 6)}


def test_coco_results_map_ids_and_keep_people(tmp_path):
    path = tmp_path / "res.json"
    items = [
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 20], "score": 0.9},
        {"image_id": 2, "category_id": 1, "bbox": [5, 5, 10, 10], "score": 0.8},
        {"image_id": 1, "category_id": 3, "bbox": [0, 0, 5, 5], "score": 0.7},  # a car
    ]
    path.write_text("[\n" + ",\n".join(json.dumps(i) for i in items) + "\n]\n")
    got = read_detections(path, id_map={1: "img_a", 2: "img_b"})
    assert got.format == "coco" and got.sizes == {}
    assert got.dets["img_a"][0].tolist() == [[0, 0, 10, 20]]
    assert got.dets["img_b"][1].tolist() == [0.8]
    assert got.lines == {"img_a": 2, "img_b": 3}
    assert set(read_detections(path).dets) == {"1", "2"}  # no map: the id itself


@pytest.mark.parametrize(
    "text, line, message",
    [
        ('{"ID": "a", "dtboxes": []}\n{"ID": "b", "dtboxes": [\n', 2, "malformed JSON"),
        ('{"ID": "a", "dtboxes": [{"box": [1, 2, 3], "score": 1}]}\n', 1, "4 finite numbers"),
        ('\n{"ID": "a", "dtboxes": [{"box": [1, 2, 3, 4]}]}\n', 2, "score must be"),
        ('{"ID": "a", "dtboxes": []}\n{"ID": "a", "dtboxes": []}\n', 2, "appears twice"),
        ('{"dtboxes": []}\n', 1, "field 'ID'"),
        ('{"ID": "a", "width": -3, "height": 5, "dtboxes": []}\n', 1, "width/height"),
        ('[{"image_id": 1, "bbox": [0, 0, 1, 1], "score": 1},\n {"image_id": 1}]', 2, "item 1"),
        ('[{"image_id": 1, "bbox": [0, 0, 1, NaN], "score": 1}]', 1, "finite"),
        ('[\n{"image_id": 1, "bbox": [0, 0, 1, 1], "score": 1},\n{"image_id": ', 3, "malformed"),
    ],
)
def test_bad_files_raise_a_data_error_with_the_line(tmp_path, text, line, message):
    path = tmp_path / "dt.json"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as err:
        read_detections(path)
    assert err.value.path == str(path) and err.value.line == line


def test_missing_file_and_unknown_ids(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_detections(tmp_path / "nope.json")
    path = tmp_path / "dt.json"
    write_crowdhuman_dets(path, {"a": (np.zeros((0, 4)), np.zeros(0)), "zz": ([], [])})
    found = read_detections(path)
    with pytest.raises(DataError, match="'zz' is not in the ground truth") as err:
        found.check_ids({"a"}, path, "gt.odgt")
    assert err.value.line == 2


def _lines(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_detections_of_non_positive_size_are_counted_and_refused_when_strict(tmp_path, caplog):
    good = {"box": [1, 1, 5, 5], "score": 0.9}
    path = _lines(
        tmp_path / "dt.odgt",
        [
            {"ID": "a", "dtboxes": [good]},
            {"ID": "b", "dtboxes": [good, {"box": [1, 1, 0, 5], "score": 0.5}]},
            {"ID": "c", "dtboxes": [{"box": [1, 1, 4, -2], "score": 0.1}, good]},
        ],
    )
    found = read_detections(path)
    assert {k: v.tolist() for k, v in found.degenerate.items()} == {"b": [1], "c": [0]}
    with caplog.at_level("WARNING"):
        counts = found.check(["a", "b", "c"], path)
    assert counts == {"degenerate_dets": 2, "degenerate_images": 2, "images_without_line": 0}
    assert f"{path}:2" in caplog.text and "2 detection(s) in 2 image(s)" in caplog.text
    assert "'b' dtboxes[1]" in caplog.text
    with pytest.raises(DataError, match="non-positive width or height") as err:
        found.check(["a", "b", "c"], path, strict=True)
    assert err.value.path == str(path) and err.value.line == 2


def test_coco_results_of_non_positive_size_are_counted(tmp_path):
    path = tmp_path / "res.json"
    items = [
        {"image_id": 1, "bbox": [0, 0, 10, 20], "score": 0.9},
        {"image_id": 1, "bbox": [0, 0, 0, 0], "score": 0.8},
    ]
    path.write_text(json.dumps(items))
    found = read_detections(path)
    assert found.check(["1", "2"], path)["degenerate_dets"] == 1  # "2": no line in COCO
    with pytest.raises(DataError, match=r"'1' result\[1\]"):
        found.check(["1"], path, strict=True)


def test_ground_truth_images_without_a_detection_line_are_counted(tmp_path, caplog):
    path = _lines(tmp_path / "dt.odgt", [{"ID": "b", "dtboxes": []}])
    found = read_detections(path)
    with caplog.at_level("WARNING"):
        counts = found.check(["a", "b", "c"], path)
    assert counts["images_without_line"] == 2 and counts["degenerate_dets"] == 0
    assert "2 of 3 ground-truth images have no detection line (first: 'a')" in caplog.text
    with pytest.raises(DataError, match="no detection line"):
        found.check(["a", "b", "c"], path, strict=True)
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert found.check(["b"], path)["images_without_line"] == 0
    assert not caplog.text
