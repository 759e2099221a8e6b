"""check_records: every bad image named with the annotation file:line, sizes, outside boxes."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import cv2
import numpy as np

from crowdet.data.odgt import read_odgt_report
from crowdet.data.validate import check_records, outside_rows


def person(fbox, box_id):
    return {"tag": "person", "fbox": fbox, "extra": {"box_id": box_id}, "head_attr": {}}


def rotated_jpeg(image: np.ndarray) -> bytes:
    """JPEG with a hand-made APP1 Exif segment: orientation 6 (rotate 90 degrees clockwise)."""
    ok, buf = cv2.imencode(".jpg", image)
    entry = struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0)
    tiff = b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + entry + b"\0" * 4
    payload = b"Exif\x00\x00" + tiff
    data = buf.tobytes()
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:]


def make_dataset(root: Path) -> Path:
    images = root / "Images"
    images.mkdir(parents=True)
    img = np.full((60, 80, 3), 128, np.uint8)
    cv2.imwrite(str(images / "ok.jpg"), img)
    cv2.imwrite(str(images / "sized.jpg"), img)
    cv2.imwrite(str(images / "wrongsize.jpg"), img)
    (images / "rot.jpg").write_bytes(rotated_jpeg(img))  # shown as 60 wide, 80 high
    data = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (200, 200, 3)))[1]
    (images / "trunc.jpg").write_bytes(data.tobytes()[:3000])
    (images / "zero.jpg").write_bytes(b"")
    (images / "text.jpg").write_text("hello")
    (images / "ignoreonly.jpg").write_bytes((images / "ok.jpg").read_bytes())
    lines = [
        {"ID": "ok", "gtboxes": [person([-10, 5, 30, 50], 7), person([10, 10, 20, 20], 8)]},
        {"ID": "sized", "gtboxes": [person([100, 100, 10, 10], 3)], "width": 80, "height": 60},
        {"ID": "wrongsize", "gtboxes": [], "width": 60, "height": 80},
        {"ID": "rot", "gtboxes": [], "width": 60, "height": 80},
        {"ID": "trunc", "gtboxes": []},
        {"ID": "zero", "gtboxes": []},
        {"ID": "text", "gtboxes": []},
        {"ID": "missing", "gtboxes": []},
        {"ID": "ignoreonly", "gtboxes": [{"tag": "mask", "fbox": [0, 0, 5, 5]}]},
    ]
    ann = root / "ann.odgt"
    ann.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return ann


def test_check_records_names_every_problem(tmp_path):
    ann = make_dataset(tmp_path)
    records, report = read_odgt_report(ann)
    assert check_records(records, report, progress=False) == 5
    by_id = {r.image_id: r for r in records}
    assert (by_id["rot"].width, by_id["rot"].height) == (60, 80)  # EXIF applied, no mismatch
    assert (by_id["ok"].width, by_id["ok"].height) == (80, 60)
    errors = {p.kind: p for p in report.problems if p.kind not in ("empty", "outside")}
    found = {(p.kind, p.line) for p in report.problems if p.kind not in ("empty",)}
    assert found >= {
        ("size mismatch", 3),
        ("bad image", 5),
        ("bad image", 6),
        ("bad image", 7),
        ("missing", 8),
        ("ignore only", 9),
        ("outside", 1),
        ("outside", 2),
    }
    assert report.count("bad image") == 3 and report.count("missing") == 1
    assert report.count("size mismatch") == 1 and report.num_errors == 5
    text = {p.line: str(p) for p in report.problems if p.kind not in ("empty",)}
    assert text[5].startswith(f"{ann}:5: image 'trunc': truncated JPEG")
    assert text[6].startswith(f"{ann}:6: image 'zero': image file is empty")
    assert text[7].startswith(f"{ann}:7: image 'text': not a readable image")
    assert text[8].startswith(f"{ann}:8: image 'missing': image file not found")
    assert str(tmp_path / "Images" / "missing.jpg") in text[8]
    assert "annotated size 60x80 but the image is 80x60" in str(errors["size mismatch"])
    outside = [str(p) for p in report.problems if p.kind == "outside"]
    assert "1 full box(es) extend past the 80x60 image (kept; box_id 7)" in outside[0]
    assert "1 full box(es) lie wholly outside the 80x60 image (kept; box_id 3)" in outside[1]
    assert len(by_id["ok"]) == 2 and len(by_id["sized"]) == 1  # outside boxes are kept


def test_check_without_decoding_uses_annotated_sizes(tmp_path):
    records, report = read_odgt_report(make_dataset(tmp_path))
    check_records(records, report, decode=False, progress=False)
    assert report.num_errors == 0 and report.count("outside") == 1  # only 'sized' has a size


def test_outside_rows():
    boxes = np.array(
        [[0, 0, 10, 10], [-1, 0, 5, 5], [0, 0, 101, 5], [100, 0, 120, 5], [-9, -9, 0, 0]],
        np.float32,
    )
    partly, wholly = outside_rows(boxes, 100, 50)
    assert partly.tolist() == [1, 2] and wholly.tolist() == [3, 4]
