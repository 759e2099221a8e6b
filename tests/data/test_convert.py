"""`crowdet convert` and `crowdet check-data`: formats, round trips, atomic output, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from crowdet.cli import main
from crowdet.data.coco import read_coco
from crowdet.data.convert import ReadOptions, guess_format, read_annotations
from crowdet.data.odgt import read_odgt

REAL = Path("/work/shared/fixtures/crowdhuman_real_line.odgt")
FIELDS = ("fbox", "vbox", "hbox", "ignore", "head_ignore", "box_ids", "occ")


def assert_same(a, b):
    assert [r.image_id for r in a] == [r.image_id for r in b]
    for x, y in zip(a, b, strict=True):
        for name in FIELDS:
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name), err_msg=name)


def odgt_fixture(root: Path) -> Path:
    g = {
        "tag": "person",
        "fbox": [10, 20, 30, 80],
        "vbox": [12, 22, 20, 40],
        "hbox": [18, 20, 10, 12],
        "extra": {"box_id": 5, "occ": 1},
        "head_attr": {"ignore": 1, "occ": 0, "unsure": 0},
    }
    mask = {"tag": "mask", "fbox": [50, 5, 20, 20], "extra": {"ignore": 1}, "head_attr": {}}
    lines = [{"ID": "x,1", "gtboxes": [g, mask]}, {"ID": "x,2", "gtboxes": []}]
    path = root / "ann.odgt"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    (root / "Images").mkdir()
    cv2.imwrite(str(root / "Images" / "x,1.jpg"), np.zeros((90, 120, 3), np.uint8))
    return path


def test_guess_format(tmp_path):
    assert guess_format("a.odgt") == "odgt" and guess_format("a.json") == "coco"
    assert guess_format("anno_train.mat") == "citypersons"
    assert guess_format("Annotations/000040.jpg.txt") == "widerperson"
    assert guess_format("a.txt") is None


@pytest.mark.parametrize("box", ["full", "visible", "head"])
def test_odgt_coco_odgt_cli_round_trip(tmp_path, capsys, box):
    src = odgt_fixture(tmp_path)
    coco, back = tmp_path / "out" / "ann.json", tmp_path / "back.odgt"
    assert (
        main(["convert", str(src), str(coco), "--from", "odgt", "--to", "coco", "--box", box]) == 0
    )
    assert "wrote" in capsys.readouterr().out
    data = json.loads(coco.read_text())
    assert data["images"][0] == {"id": 1, "file_name": "x,1.jpg", "width": 120, "height": 90}
    assert data["images"][1]["width"] == 0  # no image on disk: size unknown
    expected = {"full": [10, 20, 30, 80], "visible": [12, 22, 20, 40], "head": [18, 20, 10, 12]}
    assert data["annotations"][0]["bbox"] == expected[box]
    assert main(["convert", str(coco), str(back)]) == 0  # formats guessed from the names
    assert_same(read_odgt(src), read_odgt(back))


@pytest.mark.skipif(not REAL.exists(), reason="shared fixtures folder absent")
def test_real_line_through_coco(tmp_path):
    main(["convert", str(REAL), str(tmp_path / "r.json")])
    main(["convert", str(tmp_path / "r.json"), str(tmp_path / "r.odgt")])
    assert_same(read_odgt(REAL), read_odgt(tmp_path / "r.odgt"))
    (rec,) = read_coco(tmp_path / "r.json")
    assert rec.ignore.tolist() == [False] * 6 + [True]


def test_other_formats_to_coco_and_odgt(tmp_path):
    ann = tmp_path / "WiderPerson" / "Annotations"
    ann.mkdir(parents=True)
    (ann / "000001.jpg.txt").write_text("3\n1 10 10 50 90\n2 60 10 90 80\n4 0 0 5 5\n")
    assert main(["convert", str(ann), str(tmp_path / "w.json"), "--from", "widerperson"]) == 0
    (rec,) = read_coco(tmp_path / "w.json")
    assert rec.ignore.tolist() == [False, False, True]
    args = ["convert", str(ann), str(tmp_path / "w.odgt"), "--riders", "ignore"]
    assert main([*args, "--from", "widerperson"]) == 0
    (rec,) = read_odgt(tmp_path / "w.odgt")
    assert rec.ignore.tolist() == [False, True, True]
    np.testing.assert_array_equal(rec.fbox[0], [10, 10, 50, 90])
    labels = read_annotations(ann, "widerperson", options=ReadOptions(people_labels=(1, 4)))[0]
    assert labels[0].ignore.tolist() == [False, True, False]


def test_bad_input_exits_with_one_line_and_writes_nothing(tmp_path, capsys):
    src = tmp_path / "bad.odgt"
    src.write_text('{"ID": "a", "gtboxes": []}\n{"ID": "b", "gtboxes": [{"tag": "person"}]}\n')
    dst = tmp_path / "out.json"
    dst.write_text("previous")
    assert main(["convert", str(src), str(dst), "--strict"]) == 2
    err = capsys.readouterr().err
    assert f"{src}:2: image 'b' box 0: missing field 'fbox'" in err and "Traceback" not in err
    assert dst.read_text() == "previous" and sorted(p.name for p in tmp_path.iterdir()) == [
        "bad.odgt",
        "out.json",
    ]
    assert main(["convert", str(src), str(tmp_path / "x.yaml")]) == 2
    assert "cannot tell the format" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["convert", str(src), str(dst), "--to", "ecp"])  # read-only format


def test_check_data_command(tmp_path, capsys):
    src = odgt_fixture(tmp_path)
    report = tmp_path / "rep" / "check.json"
    rc = main(
        ["check-data", str(src), "--images", str(tmp_path / "Images"), "--report", str(report)]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "found 2, corrupt 0, missing 1, empty 1, invalid boxes 0" in out
    assert f"[missing] {src}:2: image 'x,2': image file not found" in out
    data = json.loads(report.read_text())
    assert data["counts"]["missing"] == 1 and data["stats"]["people"] == 1
    assert data["stats"]["ignore_regions"] == 1
    kinds = [(p["kind"], p["path"], p["line"]) for p in data["problems"]]
    # person box 5 reaches y = 20 + 80 = 100 in the 90-pixel-high image
    assert kinds == [("outside", str(src), 1), ("empty", str(src), 2), ("missing", str(src), 2)]
    assert "box_id 5" in data["problems"][0]["message"]
    assert all(Path(p).is_file() for p in data["plots"]) and len(data["plots"]) == 3
    assert main(["check-data", str(src), "--strict"]) == 1
    clean = tmp_path / "clean.odgt"
    clean.write_text(src.read_text().splitlines()[0] + "\n")
    assert main(["check-data", str(clean), "--strict"]) == 0
