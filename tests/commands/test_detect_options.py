"""`crowdet detect` options on a real (tiny) checkpoint: --batch gives the detections of one
image at a time, --conf / --format coco / --save-txt agree with the odgt lines, a video comes
back as a video with one line per frame, --half refuses the CPU in one line."""

import json

import cv2
import numpy as np
import pytest

from crowdet.cli import main


@pytest.fixture(scope="module")
def images(tiny_run):
    return sorted((tiny_run[0] / "Images").glob("synth_val_*.jpg"))[:5]


def detect(ckpt, *args) -> int:
    return main(["detect", "--checkpoint", str(ckpt), *map(str, args)])


def odgt(out) -> dict:
    objs = [json.loads(t) for t in (out / "detections.odgt").read_text().splitlines()]
    return {o["ID"]: o["dtboxes"] for o in objs}


def test_batches_give_the_detections_of_single_images(tiny_run, images, tmp_path):
    """Images of one size: the same padded input whatever the batch (a batch pads to its
    largest image, so images of several sizes could differ in the last digits)."""
    ckpt = tiny_run[1] / "last.pt"
    assert detect(ckpt, *images, "--out", tmp_path / "one", "--no-tta") == 0
    assert detect(ckpt, *images, "--out", tmp_path / "four", "--batch", "4", "--no-tta") == 0
    one, four = odgt(tmp_path / "one"), odgt(tmp_path / "four")
    assert one.keys() == four.keys() and len(one) == 5
    assert sum(len(v) for v in one.values()) > 0
    for key in one:
        a = np.array([[*d["box"], d["score"]] for d in one[key]]).reshape(-1, 5)
        b = np.array([[*d["box"], d["score"]] for d in four[key]]).reshape(-1, 5)
        np.testing.assert_allclose(a, b, atol=1e-3)


def test_conf_coco_and_txt_outputs_agree(tiny_run, images, tmp_path):
    ckpt, out = tiny_run[1] / "last.pt", tmp_path / "out"
    assert detect(ckpt, *images[:2], "--out", tmp_path / "all", "--no-tta") == 0
    args = ["--out", out, "--conf", "0.1", "--format", "coco", "--save-txt", "--no-tta"]
    assert detect(ckpt, *images[:2], *args) == 0
    every = odgt(tmp_path / "all")
    coco = json.loads((out / "detections.json").read_text())
    for path in images[:2]:
        kept = [d for d in every[path.stem] if d["score"] >= 0.1]
        mine = [d for d in coco if d["image_id"] == path.stem]
        assert len(mine) == len(kept) < len(every[path.stem])
        np.testing.assert_allclose([d["bbox"] for d in mine], [d["box"] for d in kept], atol=1e-4)
        rows = np.loadtxt(out / "labels" / f"{path.stem}.txt", ndmin=2)
        xyxy = [[x, y, x + w, y + h] for x, y, w, h in (d["bbox"] for d in mine)]
        np.testing.assert_allclose(rows[:, :4], xyxy, atol=0.01)
        np.testing.assert_allclose(rows[:, 4], [d["score"] for d in mine], atol=1e-4)


def test_video_in_video_out(tiny_run, images, tmp_path):
    frames = [cv2.resize(cv2.imread(str(p)), (160, 96)) for p in images[:3]]
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (160, 96))
    for f in frames:
        writer.write(f)
    writer.release()
    out = tmp_path / "out"
    assert detect(tiny_run[1] / "last.pt", video, "--out", out, "--batch", "2", "--no-tta") == 0
    assert sorted(odgt(out)) == [f"clip_{i:06d}" for i in range(3)]
    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    read = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (96, 160, 3)
        read += 1
    assert read == 3 and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--half"], "half precision needs a CUDA device"),
        (["--batch", "0"], "--batch must be at least 1"),
        (["--conf", "2"], "--conf must be a score in [0, 1]"),
        (["--imgsz", "100"], "data.input_size"),
    ],
)
def test_option_errors_are_one_line(tiny_run, images, tmp_path, capsys, args, expected):
    assert detect(tiny_run[1] / "last.pt", images[0], "--out", tmp_path, *args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err
