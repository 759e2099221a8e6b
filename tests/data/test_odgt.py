"""The odgt reader and writer: real schema, hand-made fixtures, round trips, every bad input."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import pytest

from crowdet.data.odgt import read_odgt, read_odgt_report, write_odgt
from crowdet.data.records import ImageRecord
from crowdet.errors import DataError

REAL = Path("/work/shared/fixtures/crowdhuman_real_line.odgt")


def person(fbox, vbox=None, hbox=None, box_id=0, tag="person", **extra):
    g = {"tag": tag, "fbox": fbox, "extra": {"box_id": box_id, "occ": 0, **extra}}
    g["head_attr"] = {"ignore": 0, "occ": 0, "unsure": 0}
    if vbox is not None:
        g["vbox"] = vbox
    if hbox is not None:
        g["hbox"] = hbox
    return g


def write_lines(path: Path, objs) -> Path:
    lines = [o if isinstance(o, str) else json.dumps(o) for o in objs]
    path.write_text("\n".join(lines) + "\n")
    return path


def xyxy(x, y, w, h):
    return [x, y, x + w, y + h]


@pytest.mark.skipif(not REAL.exists(), reason="shared fixtures folder absent")
def test_real_crowdhuman_line():
    (rec,) = read_odgt(REAL)
    assert rec.image_id == "283554,35288000868e92d4"
    assert len(rec) == 7 and rec.num_people == 6
    assert rec.ignore.tolist() == [False] * 6 + [True]
    np.testing.assert_array_equal(rec.fbox[0], xyxy(1330, 317, 418, 1338))
    np.testing.assert_array_equal(rec.vbox[1], xyxy(792, 24, 723, 1332))
    np.testing.assert_array_equal(rec.hbox[2], xyxy(853, 294, 112, 133))
    np.testing.assert_array_equal(rec.fbox[6], xyxy(1387, 353, 320, 285))
    assert rec.box_ids.tolist() == [0, 1, 2, 3, 4, 5, -1]
    assert rec.occ[:6].tolist() == [1, 0, 1, 0, 1, 0] and math.isnan(rec.occ[6])
    assert rec.fbox.dtype == np.float32 and rec.fbox.shape == (7, 4)
    assert rec.image_path == str(REAL.parent / "Images" / "283554,35288000868e92d4.jpg")
    assert rec.line == 1 and rec.source == str(REAL)


def test_fixture_values_ignore_rules_and_nan_parts(tmp_path):
    path = write_lines(
        tmp_path / "a.odgt",
        [
            {
                "ID": "img1",
                "gtboxes": [
                    person([10, 20, 30, 40], [12, 22, 10, 10], [15, 20, 5, 6], box_id=7),
                    person([1.5, 2.25, 3.5, 4.75], box_id=8),  # no vbox / hbox
                    person([0, 0, 5, 5], [0, 0, 5, 5], [0, 0, 1, 1], box_id=9, ignore=1),
                    person([100, 100, 50, 60], tag="mask", box_id=10),
                ],
            },
            {"ID": "img2", "gtboxes": []},
        ],
    )
    path.parent.joinpath("imgs").mkdir()
    (tmp_path / "imgs" / "img2.png").write_bytes(b"x")
    recs = read_odgt(path, images_dir=tmp_path / "imgs")
    a, b = recs
    np.testing.assert_array_equal(a.fbox[0], [10, 20, 10 + 30, 20 + 40])
    np.testing.assert_array_equal(a.vbox[0], [12, 22, 12 + 10, 22 + 10])
    np.testing.assert_array_equal(a.hbox[0], [15, 20, 15 + 5, 20 + 6])
    np.testing.assert_array_equal(a.fbox[1], [1.5, 2.25, 1.5 + 3.5, 2.25 + 4.75])
    assert np.isnan(a.vbox[1]).all() and np.isnan(a.hbox[1]).all() and np.isnan(a.hbox[3]).all()
    assert a.ignore.tolist() == [False, False, True, True]
    assert a.box_ids.tolist() == [7, 8, 9, 10]
    assert a.image_path == str(tmp_path / "imgs" / "img1.jpg")
    assert b.image_path == str(tmp_path / "imgs" / "img2.png") and len(b) == 0
    assert b.fbox.shape == (0, 4) and b.ignore.shape == (0,)


def test_head_ignore_and_sizes(tmp_path):
    g = person([0, 0, 10, 10], hbox=[1, 1, 2, 2])
    g["head_attr"]["ignore"] = 1
    path = write_lines(
        tmp_path / "a.odgt", [{"ID": "x", "gtboxes": [g], "width": 64, "height": 48}]
    )
    (rec,) = read_odgt(path)
    assert rec.head_ignore.tolist() == [True] and rec.ignore.tolist() == [False]
    assert rec.ignore_for("head").tolist() == [True]
    assert (rec.width, rec.height) == (64, 48)


def assert_records_equal(a: list[ImageRecord], b: list[ImageRecord]):
    assert [r.image_id for r in a] == [r.image_id for r in b]
    for x, y in zip(a, b, strict=True):
        for name in ("fbox", "vbox", "hbox", "ignore", "head_ignore", "box_ids", "occ"):
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name), err_msg=name)
        assert (x.width, x.height) == (y.width, y.height)


def test_round_trip_real_and_fixture(tmp_path):
    objs = [
        {"ID": "a", "gtboxes": [person([1, 2, 3, 4], [1, 2, 3, 3], [1, 2, 1, 1], box_id=0)]},
        {"ID": "b", "gtboxes": [person([0.1, 0.2, 10.3, 7.7], box_id=3), person([5, 5, 5, 5])]},
        {"ID": "c", "gtboxes": []},
    ]
    sources = [write_lines(tmp_path / "f.odgt", objs)]
    if REAL.exists():
        sources.append(REAL)
    for src in sources:
        first = read_odgt(src)
        out = tmp_path / "out" / "again.odgt"
        write_odgt(first, out)
        assert_records_equal(first, read_odgt(out))
        write_odgt(read_odgt(out), tmp_path / "third.odgt")
        assert (tmp_path / "third.odgt").read_bytes() == out.read_bytes()


def test_write_keeps_integers_and_tags(tmp_path):
    rec = ImageRecord(
        "z",
        fbox=np.array([[10, 20, 40, 60], [1.5, 2, 4, 5]], np.float32),
        vbox=np.full((2, 4), np.nan, np.float32),
        hbox=np.array([[12, 22, 14, 24], [np.nan] * 4], np.float32),
        ignore=np.array([False, True]),
        head_ignore=np.array([True, False]),
        box_ids=np.array([4, -1]),
        occ=np.array([1, np.nan], np.float32),
    )
    write_odgt([rec], tmp_path / "z.odgt")
    obj = json.loads((tmp_path / "z.odgt").read_text())
    g0, g1 = obj["gtboxes"]
    assert g0 == {
        "tag": "person",
        "fbox": [10, 20, 30, 40],
        "hbox": [12, 22, 2, 2],
        "extra": {"box_id": 4, "occ": 1},
        "head_attr": {"ignore": 1},
    }
    assert all(type(v) is int for v in g0["fbox"])
    assert g1["tag"] == "mask" and g1["extra"] == {"ignore": 1} and g1["fbox"] == [1.5, 2, 2.5, 3]
    assert "vbox" not in g1 and "hbox" not in g1


def test_write_is_atomic_on_error(tmp_path):
    out = tmp_path / "keep.odgt"
    out.write_text("old\n")
    bad = ImageRecord("bad", fbox=np.zeros((1, 4), np.float32))  # other arrays have length 0
    with pytest.raises(IndexError):
        write_odgt([ImageRecord("ok"), bad], out)
    assert out.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["keep.odgt"]


# ---------------------------------------------------------------- bad input
GOOD = {"ID": "good", "gtboxes": [person([0, 0, 10, 10])]}
BAD_LINES = {
    "malformed": ('{"ID": "x", "gtboxes": [', "malformed JSON"),
    "not object": ("[1, 2]", "expected a JSON object"),
    "no ID": ({"gtboxes": []}, "missing field 'ID'"),
    "no gtboxes": ({"ID": "x"}, "missing field 'gtboxes'"),
    "ID type": ({"ID": 5, "gtboxes": []}, "'ID' must be a non-empty string"),
    "gtboxes type": ({"ID": "x", "gtboxes": {}}, "'gtboxes' must be a list"),
}
BAD_BOXES = {
    "3 numbers": (person([0, 0, 10]), "fbox must be 4 numbers"),
    "5 numbers": (person([0, 0, 10, 10, 1]), "fbox must be 4 numbers"),
    "string": (person(["0", 0, 10, 10]), "fbox must hold 4 finite numbers"),
    "null": (person(None), "fbox must be 4 numbers"),
    "zero width": (person([0, 0, 0, 10]), "zero or negative size"),
    "negative height": (person([0, 0, 5, -1]), "zero or negative size"),
    "no fbox": ({"tag": "person", "extra": {"box_id": 3}}, "missing field 'fbox'"),
    "no tag": ({"fbox": [0, 0, 1, 1]}, "missing field 'tag'"),
    "box not object": ([0, 0, 1, 1], "expected a JSON object"),
    "extra type": ({"tag": "person", "fbox": [0, 0, 1, 1], "extra": 3}, "'extra' must be"),
    "ignore type": (person([0, 0, 1, 1], ignore="yes"), "extra.ignore must be a number"),
    "box_id type": (person([0, 0, 1, 1], box_id=1.5), "extra.box_id must be an integer"),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_bad_record_strict_names_file_and_line(tmp_path, case):
    line, expected = BAD_LINES[case]
    path = write_lines(tmp_path / "bad.odgt", [GOOD, line])
    with pytest.raises(DataError) as info:
        read_odgt(path, strict=True)
    assert (info.value.path, info.value.line, info.value.kind) == (str(path), 2, "corrupt")
    assert f"{path}:2: " in str(info.value) and expected in str(info.value)


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_bad_record_skipped_and_counted(tmp_path, case, caplog):
    line, _ = BAD_LINES[case]
    path = write_lines(tmp_path / "bad.odgt", [line, GOOD, line])
    with caplog.at_level(logging.WARNING):
        recs, report = read_odgt_report(path)
    assert [r.image_id for r in recs] == ["good"] and recs[0].line == 2
    assert report.count("corrupt") == 2 and report.found == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"{path}:1:" in warnings[0].getMessage()
    assert "found 1, corrupt 2, missing 0, empty 0, invalid boxes 0" == report.summary()


@pytest.mark.parametrize("case", sorted(BAD_BOXES))
def test_bad_box(tmp_path, case):
    box, expected = BAD_BOXES[case]
    rec = {"ID": "img", "gtboxes": [person([1, 1, 4, 4], box_id=0), box, person([2, 2, 6, 6])]}
    path = write_lines(tmp_path / "box.odgt", [GOOD, rec])
    with pytest.raises(DataError) as info:
        read_odgt(path, strict=True)
    assert (info.value.line, info.value.kind) == (2, "invalid box")
    assert str(info.value).startswith(f"{path}:2: image 'img' box 1") and expected in str(
        info.value
    )
    recs, report = read_odgt_report(path)
    assert report.count("invalid box") == 1 and report.problems[0].line == 2
    np.testing.assert_array_equal(recs[1].fbox, [[1, 1, 5, 5], [2, 2, 8, 8]])


def test_bad_visible_box_becomes_nan_and_names_box_id(tmp_path):
    rec = {"ID": "img", "gtboxes": [person([0, 0, 4, 4], [0, 0, 0, 4], box_id=12)]}
    path = write_lines(tmp_path / "v.odgt", [rec])
    with pytest.raises(
        DataError, match=r"v\.odgt:1: image 'img' box 0 \(box_id 12\): vbox has zero"
    ):
        read_odgt(path, strict=True)
    (r,), report = read_odgt_report(path)
    assert np.isnan(r.vbox).all() and r.fbox.tolist() == [[0, 0, 4, 4]]
    assert report.count("invalid box") == 1


def test_duplicate_ids(tmp_path):
    path = write_lines(tmp_path / "d.odgt", [GOOD, {"ID": "other", "gtboxes": []}, GOOD])
    with pytest.raises(
        DataError, match=r"d\.odgt:3: duplicate image ID 'good' \(first at line 1\)"
    ):
        read_odgt(path, strict=True)
    recs, report = read_odgt_report(path)
    assert [r.image_id for r in recs] == ["good", "other"] and report.count("duplicate") == 1
    assert report.count("empty") == 1


def test_outside_boxes_kept_and_blank_lines_skipped(tmp_path):
    path = write_lines(
        tmp_path / "o.odgt", [{"ID": "o", "gtboxes": [person([-50, -20, 90, 80])]}, ""]
    )
    (rec,), report = read_odgt_report(path, strict=True)
    np.testing.assert_array_equal(rec.fbox, [[-50, -20, 40, 60]])
    assert report.num_errors == 0


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="annotation file not found"):
        read_odgt(tmp_path / "nope.odgt")


def test_many_people_vectorised_matches_checked_path(tmp_path):
    rng = np.random.default_rng(0)
    n = 600
    xywh = np.concatenate([rng.integers(-50, 900, (n, 2)), rng.integers(1, 300, (n, 2))], 1)
    boxes = [person(b.tolist(), b.tolist(), box_id=i) for i, b in enumerate(xywh)]
    clean = write_lines(tmp_path / "clean.odgt", [{"ID": "big", "gtboxes": boxes}])
    dirty = write_lines(tmp_path / "dirty.odgt", [{"ID": "big", "gtboxes": boxes + [person([0])]}])
    (a,), (b,) = read_odgt(clean), read_odgt(dirty)  # dirty goes through the box-by-box path
    assert len(a) == n
    expected = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1)
    np.testing.assert_array_equal(a.fbox, expected)
    assert_records_equal([a], [b])


def test_strict_reports_the_first_problem_in_file_order(tmp_path):
    lines = [GOOD, {"ID": "b", "gtboxes": [person([0, 0, -1, 1])]}, "{oops", GOOD]
    path = write_lines(tmp_path / "order.odgt", lines)
    with pytest.raises(DataError) as info:
        read_odgt(path, strict=True)
    assert info.value.line == 2 and info.value.kind == "invalid box"
    recs, report = read_odgt_report(path)
    found = [(p.line, p.kind) for p in report.problems]  # in the order found, all counted
    assert found == [(3, "corrupt"), (4, "duplicate"), (2, "invalid box"), (2, "empty")]
    assert [r.image_id for r in recs] == ["good", "b"] and len(recs[1]) == 0
