"""Problems that used to pass without a word: each now a counted problem, a note or an error."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from crowdet.cli import main
from crowdet.data.coco import read_coco_report
from crowdet.data.dataset import CrowdDataset, SampleSource
from crowdet.data.odgt import read_odgt, read_odgt_report
from crowdet.data.records import ImageRecord
from crowdet.data.validate import check_records
from crowdet.errors import DataError


def box(box_id, tag="person", **parts):
    return {"tag": tag, "fbox": [10, 10, 20, 40], "extra": {"box_id": box_id}, **parts}


def write_lines(path: Path, objs) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return path


def test_folder_without_annotation_files_is_an_error(tmp_path, capsys):
    write_lines(tmp_path / "a.odgt", [{"ID": "a", "gtboxes": [box(0)]}])
    assert main(["check-data", str(tmp_path), "--no-decode"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}: a folder without ECP .json or WiderPerson .txt annotation files" in err
    (tmp_path / "Annotations").mkdir()
    assert main(["check-data", str(tmp_path / "Annotations"), "--no-decode"]) == 2
    assert "no widerperson annotation files in this folder" in capsys.readouterr().err


def test_empty_annotation_file_is_a_problem(tmp_path, capsys):
    empty = tmp_path / "empty.odgt"
    empty.write_text("")
    assert main(["check-data", str(empty), "--no-decode"]) == 0
    out = capsys.readouterr().out
    assert f"[corrupt] {empty}: holds no annotation records (empty file?)" in out
    assert main(["check-data", str(empty), "--no-decode", "--strict"]) == 1


def test_unknown_tag_is_noted_with_line_and_box_id(tmp_path):
    path = write_lines(
        tmp_path / "t.odgt",
        [{"ID": "ok", "gtboxes": [box(0)]}, {"ID": "c", "gtboxes": [box(3), box(4, tag="car")]}],
    )
    (_, rec), report = read_odgt_report(path)
    assert rec.ignore.tolist() == [False, True]
    (note,) = report.problems
    assert (note.kind, note.line, report.count("unknown tag")) == ("unknown tag", 2, 1)
    assert "image 'c': unknown tag 'car' (box 1, box_id 4) read as an ignore region" in str(note)


def test_duplicate_box_ids_are_noted(tmp_path):
    path = write_lines(tmp_path / "d.odgt", [{"ID": "d", "gtboxes": [box(2), box(2), box(5)]}])
    records, report = read_odgt_report(path)
    check_records(records, report, decode=False, progress=False)
    (note,) = [p for p in report.problems if p.kind == "duplicate box_id"]
    assert "image 'd': box_id 2 used by more than one box" in str(note) and note.line == 1


def coco(tmp_path: Path, categories) -> Path:
    anns = [
        {"id": i, "image_id": 1, "category_id": cat, "bbox": [1, 1, 5, 9]}
        for i, cat in enumerate([1, 1, 3, 7], 1)
    ]
    data = {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": anns}
    path = tmp_path / "c.json"
    path.write_text(json.dumps({**data, "categories": categories}))
    return path


def test_coco_unknown_category_counted_and_other_categories_noted(tmp_path):
    cats = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}]
    (rec,), report = read_coco_report(coco(tmp_path, cats))
    assert len(rec) == 2 and report.count("corrupt") == 1 and report.count("other category") == 1
    assert "annotations[3] (id 4): category_id 7 is not in 'categories'" in str(
        report.first("corrupt")
    )
    assert "1 annotation(s) of other categories not read as people (car 1)" in str(
        report.first("other category")
    )
    with pytest.raises(DataError, match="category_id 7 is not in 'categories'"):
        read_coco_report(coco(tmp_path, cats), strict=True)


def test_coco_single_category_keeps_only_its_own(tmp_path):
    (rec,), report = read_coco_report(coco(tmp_path, [{"id": 1, "name": "people"}]))
    assert len(rec) == 2 and report.count("corrupt") == 2


def head_records(tmp_path: Path, with_head: int) -> list[ImageRecord]:
    gt = [box(i, hbox=[12, 10, 6, 6]) if i < with_head else box(i) for i in range(3)]
    return read_odgt(write_lines(tmp_path / "h.odgt", [{"ID": "h", "gtboxes": gt}]))


def test_training_on_heads_without_head_boxes(tmp_path, caplog):
    with pytest.raises(DataError, match=r"none of the 3 people has a head box \(hbox\)"):
        CrowdDataset(SampleSource(head_records(tmp_path, 0)), [], box_kind="head")
    with caplog.at_level(logging.WARNING):
        CrowdDataset(SampleSource(head_records(tmp_path, 2)), [], box_kind="head")
    assert "1 of 3 people have no head box (hbox)" in caplog.text
    caplog.clear()
    CrowdDataset(SampleSource(head_records(tmp_path, 0)), [], box_kind="full")
    assert np.isnan(head_records(tmp_path, 0)[0].hbox).all() and caplog.text == ""
