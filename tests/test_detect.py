"""`crowdet detect` over folders: unreadable files skipped and named, same stems kept apart.

The detector is a stand-in that returns one box covering the whole image, so each detection
line shows which image it came from (its width)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from crowdet.cli import main
from crowdet.structures import Detections


class WholeImage:
    visible = False

    def detections(self, images):
        out = []
        for image in images:
            h, w = image.shape[:2]
            boxes = torch.tensor([[0.0, 0.0, w, h]])
            vis = torch.tensor([[0.0, 0.0, w / 2, h / 2]]) if self.visible else None
            out.append(Detections(boxes, torch.tensor([0.9]), torch.zeros(1).long(), vis))
        return out

    def predict(self, images):
        return [self(image) for image in images]


@pytest.fixture(autouse=True)
def fake_detector(monkeypatch):
    from crowdet.api import Detector

    monkeypatch.setattr(Detector, "from_checkpoint", staticmethod(lambda *a, **k: WholeImage()))


def image(path: Path, width: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((30, width, 3), 128, np.uint8))
    return path


def lines(out: Path) -> dict[str, int]:
    """ID -> width of the image its detection covers."""
    objs = [json.loads(t) for t in (out / "detections.odgt").read_text().splitlines()]
    return {o["ID"]: o["dtboxes"][0]["box"][2] for o in objs}


def detect(*args) -> int:
    return main(["detect", "--checkpoint", "none.pt", *map(str, args)])


def test_unreadable_files_are_named_skipped_and_the_rest_written(tmp_path, capsys):
    src = tmp_path / "mixed"
    image(src / "a.jpg", 40)
    (src / "b.jpg").write_text("not an image")
    (src / "c.jpg").write_bytes(b"")
    image(src / "d.png", 50)
    out = tmp_path / "out"
    assert detect(src, "--out", out) == 1
    printed = capsys.readouterr().out
    assert f"skipped {src / 'b.jpg'}: not a readable image" in printed
    assert f"skipped {src / 'c.jpg'}: image file is empty (0 bytes)" in printed
    assert "skipped 2 unreadable file(s)" in printed
    assert lines(out) == {"a": 40, "d": 50}
    assert (out / "a.jpg").is_file() and (out / "d.jpg").is_file()


def test_strict_stops_at_the_first_unreadable_file(tmp_path, capsys):
    src = tmp_path / "mixed"
    image(src / "a.jpg", 40)
    (src / "b.jpg").write_text("not an image")
    out = tmp_path / "out"
    assert detect(src, "--out", out, "--strict") == 2
    assert f"{src / 'b.jpg'}: not a readable image" in capsys.readouterr().err
    assert not (out / "detections.odgt").exists()


def test_same_stems_are_kept_apart(tmp_path):
    image(tmp_path / "coll" / "x.jpg", 40)
    image(tmp_path / "coll" / "x.png", 50)
    image(tmp_path / "coll2" / "x.jpg", 60)
    image(tmp_path / "coll2" / "sub" / "y.jpg", 70)
    image(tmp_path / "coll2" / "y.jpg", 80)
    out = tmp_path / "out"
    assert detect(tmp_path / "coll", tmp_path / "coll2", "--out", out) == 0
    assert lines(out) == {"coll/x.jpg": 40, "x.png": 50, "coll2/x.jpg": 60, "sub/y": 70, "y": 80}
    for name in ("coll/x.jpg", "x.png", "coll2/x.jpg", "sub/y", "y"):
        assert cv2.imread(str(out / f"{name}.jpg")).shape[1] == lines(out)[name], name


def test_a_single_file_keeps_its_stem(tmp_path):
    out = tmp_path / "out"
    assert detect(image(tmp_path / "in" / "p,1.jpg", 40), "--out", out) == 0
    assert lines(out) == {"p,1": 40} and (out / "p,1.jpg").is_file()


def test_inputs_that_cannot_be_told_apart_are_refused(tmp_path, capsys):
    a, b = image(tmp_path / "a" / "d" / "x.jpg", 40), image(tmp_path / "b" / "d" / "x.jpg", 50)
    assert detect(a.parent, b.parent, "--out", tmp_path / "out") == 2
    assert "would both be written as 'd/x.jpg'" in capsys.readouterr().err


def test_visible_boxes_are_written_as_vbox_and_scored_by_eval_dets(tmp_path, monkeypatch):
    from crowdet.api import Detector
    from crowdet.evaluate.detfile import read_detections

    seen = {}

    def from_checkpoint(*a, **k):
        seen.update(k)
        det = WholeImage()
        det.visible = True
        return det

    monkeypatch.setattr(Detector, "from_checkpoint", staticmethod(from_checkpoint))
    image(tmp_path / "in" / "a.jpg", 40)
    out = tmp_path / "out"
    assert detect(tmp_path / "in", "--out", out, "--set", "postprocess.nms=soft") == 0
    assert seen["overrides"] == ["postprocess.nms=soft"]
    obj = json.loads((out / "detections.odgt").read_text())
    assert obj["dtboxes"][0]["box"] == [0.0, 0.0, 40.0, 30.0]
    assert obj["dtboxes"][0]["vbox"] == [0.0, 0.0, 20.0, 15.0]
    assert (out / "a.jpg").is_file()
    full = read_detections(out / "detections.odgt").dets["a"][0]
    vis = read_detections(out / "detections.odgt", kind="visible").dets["a"][0]
    assert full.tolist() == [[0.0, 0.0, 40.0, 30.0]] and vis.tolist() == [[0.0, 0.0, 20.0, 15.0]]
