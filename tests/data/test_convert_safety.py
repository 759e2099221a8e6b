"""`crowdet convert` loses nothing silently: every field carried, bad records an error unless
--skip-bad, missing images counted, huge boxes rejected, the source never overwritten."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from crowdet.cli import main
from crowdet.data.boxfmt import check_xywh, valid_xywh_rows
from crowdet.data.odgt import read_odgt_report

PERSON = {
    "tag": "person",
    "fbox": [10, 20, 30, 80],
    "hbox": [18, 20, 10, 12],
    "extra": {"box_id": 5, "occ": 1, "tool": "labelme"},
    "head_attr": {"ignore": 0, "occ": 1, "unsure": 1},
    "note": "checked twice",
}
CAR = {"tag": "car", "fbox": [50, 5, 20, 20], "extra": {"box_id": 6}}
LINE = {"ID": "a", "gtboxes": [PERSON, CAR], "scene": "station"}


def write_lines(path: Path, objs) -> Path:
    path.write_text("".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs))
    return path


def missing_from(expected, got, where="") -> list[str]:
    """Paths of the values of `expected` that `got` does not hold (recursively in dicts)."""
    if isinstance(expected, dict) and isinstance(got, dict):
        return [m for k, v in expected.items() for m in missing_from(v, got.get(k), f"{where}.{k}")]
    if isinstance(expected, list) and isinstance(got, list) and len(expected) == len(got):
        return [
            m
            for i, (e, g) in enumerate(zip(expected, got))
            for m in missing_from(e, g, f"{where}[{i}]")
        ]
    return [] if expected == got else [f"{where}: {expected!r} -> {got!r}"]


def test_every_field_survives_odgt_to_odgt_and_through_coco(tmp_path):
    src = write_lines(tmp_path / "src.odgt", [LINE])
    direct, coco, back = tmp_path / "d.odgt", tmp_path / "c.json", tmp_path / "b.odgt"
    assert main(["convert", str(src), str(direct)]) == 0
    assert main(["convert", str(src), str(coco)]) == 0
    assert main(["convert", str(coco), str(back)]) == 0
    for out in (direct, back):
        (obj,) = [json.loads(t) for t in out.read_text().splitlines()]
        assert missing_from(LINE, obj) == [], out
    ann = json.loads(coco.read_text())["annotations"]
    assert ann[0]["head_attr"] == {"occ": 1, "unsure": 1} and ann[0]["note"] == "checked twice"
    assert ann[1]["tag"] == "car" and ann[1]["iscrowd"] == 1  # the car stays an ignore region


@pytest.mark.parametrize("spelling", ["same", "dotted"])
def test_converting_a_file_onto_itself_is_refused(tmp_path, capsys, spelling):
    src = write_lines(tmp_path / "src.odgt", [LINE])
    before = src.read_bytes()
    dst = src if spelling == "same" else tmp_path / "sub" / ".." / "src.odgt"
    (tmp_path / "sub").mkdir()
    assert main(["convert", str(src), str(dst)]) == 2
    assert f"{dst}: is the source file; write to another path" in capsys.readouterr().err
    assert src.read_bytes() == before


def test_destination_folder_is_named_as_a_folder(tmp_path, capsys):
    src = write_lines(tmp_path / "src.odgt", [LINE])
    assert main(["convert", str(src), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}: is a folder; name the file to write" in err and "format" not in err


def test_corrupt_line_fails_by_default_and_skip_bad_writes_the_rest(tmp_path, capsys):
    src = write_lines(
        tmp_path / "src.odgt", [LINE, '{"ID": "b", "gtboxes": [', {"ID": "c", "gtboxes": []}]
    )
    dst = tmp_path / "out.odgt"
    assert main(["convert", str(src), str(dst)]) == 2
    err = capsys.readouterr().err
    assert f"{src}:2: malformed JSON line" in err and "--skip-bad" in err and "Traceback" not in err
    assert not dst.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["src.odgt"]
    assert main(["convert", str(src), str(dst), "--skip-bad"]) == 0
    assert "found 2, corrupt 1" in capsys.readouterr().out
    assert [json.loads(t)["ID"] for t in dst.read_text().splitlines()] == ["a", "c"]


def test_missing_image_to_coco_is_counted_and_named(tmp_path, capsys):
    src = write_lines(tmp_path / "src.odgt", [LINE])
    (tmp_path / "Images").mkdir()
    dst = tmp_path / "out.json"
    assert main(["convert", str(src), str(dst)]) == 0
    out = capsys.readouterr().out
    assert "missing 1" in out
    assert f"{src}:1: image 'a': image file not found: {tmp_path / 'Images' / 'a.jpg'}" in out
    assert main(["convert", str(src), str(tmp_path / "strict.json"), "--strict"]) == 2
    assert "image 'a': image file not found" in capsys.readouterr().err
    assert not (tmp_path / "strict.json").exists()


HUGE = {"tag": "person", "fbox": [1e308, 10, 1e308, 40], "extra": {"box_id": 7}}


def test_huge_coordinates_are_an_invalid_box_not_a_crash(tmp_path, capsys):
    src = write_lines(tmp_path / "src.odgt", [{"ID": "h", "gtboxes": [HUGE, PERSON]}])
    dst = tmp_path / "out.json"
    assert main(["convert", str(src), str(dst)]) == 2
    err = capsys.readouterr().err
    assert f"{src}:1: image 'h' box 0 (box_id 7): fbox has corners beyond the float32" in err
    assert main(["convert", str(src), str(dst), "--skip-bad"]) == 0
    assert [a["box_id"] for a in json.loads(dst.read_text())["annotations"]] == [5]


def test_huge_coordinates_read_without_numpy_warnings(tmp_path):
    src = write_lines(tmp_path / "src.odgt", [{"ID": "h", "gtboxes": [HUGE, PERSON]}])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (rec,), report = read_odgt_report(src)
    assert report.count("invalid box") == 1 and rec.box_ids.tolist() == [5]
    assert np.isfinite(rec.fbox).all()


def test_float32_box_checks():
    assert check_xywh([1e38, 0, 1e38, 5], "fbox") is None  # x + w = 2e38 fits float32
    assert "beyond the float32" in check_xywh([3e38, 0, 1e38, 5], "fbox")
    assert "zero size in float32" in check_xywh([1e10, 0, 1, 5], "fbox")  # 1e10 + 1 == 1e10
    rows = np.array([[0, 0, 5, 5], [3e38, 0, 1e38, 5]], np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert valid_xywh_rows(rows[:1], False) and not valid_xywh_rows(rows, False)


@pytest.mark.parametrize("bad", [False, True])  # True: the annotation-by-annotation path
def test_coco_fields_of_other_tools_are_carried(tmp_path, bad):
    anns = [
        {"id": 1, "image_id": 9, "category_id": 1, "bbox": [1, 2, 3, 4], "segmentation": [[1, 2]]},
        {"id": 2, "image_id": 9, "category_id": 1, "bbox": [5, 6, 7, 8], "score_src": 0.5},
    ]
    if bad:
        anns.append({"id": 3, "image_id": 9, "category_id": 1, "bbox": [1, 2, 3]})
    image = {"id": 9, "file_name": "p.jpg", "width": 50, "height": 40, "license": 3}
    src = tmp_path / "src.json"
    src.write_text(json.dumps({"images": [image], "annotations": anns, "categories": []}))
    dst = tmp_path / "out.odgt"
    assert main(["convert", str(src), str(dst), "--skip-bad"]) == 0
    obj = json.loads(dst.read_text())
    assert obj["license"] == 3 and obj["width"] == 50
    assert [g.get("segmentation") for g in obj["gtboxes"]] == [[[1, 2]], None]
    assert [g.get("score_src") for g in obj["gtboxes"]] == [None, 0.5]


@pytest.mark.parametrize("dst_name", ["out.odgt", "out.json"])
def test_a_read_only_destination_is_a_one_line_error_naming_it(
    tmp_path, monkeypatch, capsys, dst_name
):
    src = write_lines(tmp_path / "a.odgt", [LINE])
    dst = tmp_path / "ro" / dst_name

    def read_only(*args, **kwargs):  # what a read-only folder answers (the tests run as root)
        raise PermissionError(13, "Permission denied", str(dst.parent))

    monkeypatch.setattr("crowdet.data.atomic.tempfile.mkstemp", read_only)
    assert main(["convert", str(src), str(dst)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(dst) in err and "Permission denied" in err
    assert "Traceback" not in err and not dst.exists()
