"""WiderPerson reader: labels, layouts (folder, file, split list), bad lines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdet.data.widerperson import read_widerperson, read_widerperson_report
from crowdet.errors import CrowdetError, DataError

ROWS = ["1 10 20 50 120", "2 60 20 90 110", "3 100 30 130 90.5", "4 200 10 260 80", "5 0 0 40 40"]


def layout(tmp_path: Path, files: dict[str, list[str]]) -> Path:
    ann = tmp_path / "WiderPerson" / "Annotations"
    ann.mkdir(parents=True, exist_ok=True)
    for name, lines in files.items():
        (ann / f"{name}.jpg.txt").write_text("\n".join(lines) + "\n")
    return ann


def test_default_labels_and_paths(tmp_path):
    ann = layout(tmp_path, {"000040": [str(len(ROWS)), *ROWS], "000041": ["0"]})
    a, b = read_widerperson(ann)
    np.testing.assert_array_equal(
        a.fbox,
        [
            [10, 20, 50, 120],
            [60, 20, 90, 110],
            [100, 30, 130, 90.5],
            [200, 10, 260, 80],
            [0, 0, 40, 40],
        ],
    )
    assert a.ignore.tolist() == [False, False, False, True, True]
    assert a.image_id == "000040" and len(b) == 0
    assert a.image_path == str(tmp_path / "WiderPerson" / "Images" / "000040.jpg")


def test_configurable_labels_and_split_list(tmp_path):
    ann = layout(tmp_path, {"000040": [str(len(ROWS)), *ROWS], "000041": ["1", *ROWS[:1]]})
    split = tmp_path / "WiderPerson" / "val.txt"
    split.write_text("000041\n000040\n")
    a, b = read_widerperson(split, people=(1,), ignore=(2, 3, 4))
    assert (a.image_id, b.image_id) == ("000041", "000040")
    assert b.ignore.tolist() == [False, True, True, True]  # label 5 dropped
    (one,) = read_widerperson(ann / "000041.jpg.txt")
    assert len(one) == 1
    with pytest.raises(CrowdetError, match="both people and ignore"):
        read_widerperson(ann, people=(1, 2), ignore=(2,))


@pytest.mark.parametrize(
    "line, expected",
    [
        ("1 10 20 50", "expected 'label x1 y1 x2 y2', got 4 values"),
        ("x 10 20 50 60", "label must be an integer"),
        ("1 10 20 abc 60", "box must be 4 numbers"),
        ("1 50 20 10 60", "zero or negative size"),
        ("1 10 20 10 60", "zero or negative size"),
    ],
)
def test_bad_line_names_file_and_line(tmp_path, line, expected):
    ann = layout(tmp_path, {"000001": ["3", ROWS[0], line, ROWS[1]]})
    path = ann / "000001.jpg.txt"
    with pytest.raises(DataError, match=expected) as info:
        read_widerperson(ann, strict=True)
    assert (info.value.path, info.value.line) == (str(path), 3)
    (rec,), report = read_widerperson_report(ann)
    assert len(rec) == 2 and report.count("invalid box") == 1


def test_count_mismatch_and_bad_header(tmp_path):
    ann = layout(tmp_path, {"a": ["3", ROWS[0]], "b": ["one", ROWS[0]]})
    with pytest.raises(DataError, match=r"a\.jpg\.txt:1: declares 3 boxes but holds 1"):
        read_widerperson(ann, strict=True)
    recs, report = read_widerperson_report(ann)
    assert [r.image_id for r in recs] == ["a"] and len(recs[0]) == 1
    assert report.count("corrupt") == 2
    assert "b.jpg.txt:1: first line must be the number of boxes" in str(report.problems[1])
