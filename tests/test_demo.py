"""End to end: `crowdet demo --quick` makes data, trains, evaluates and writes every output; its
metrics.json agrees with an independent `crowdet eval-dets` run on the detections it wrote."""

import json
import subprocess
import sys

import cv2
import pytest

from crowdet import Detector


@pytest.mark.slow
def test_demo_quick_end_to_end(tmp_path):
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "crowdet", "demo", "--quick", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "CrowdHuman AP" in done.stdout and "MR^-2" in done.stdout

    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("AP", "MR", "JI"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["num_images"] == 8  # configs/tiny.yaml: synth val 8
    assert metrics["num_gt"] > 8 * 5  # the demo preset is a crowd
    assert metrics["num_dets"] > 0 and metrics["AP"] > 0  # 40 steps are enough to start

    for name in ("predictions.png", "training_curves.png", "pr_curve.png", "mr_fppi.png"):
        image = cv2.imread(str(out / name))
        assert image is not None and image.shape[0] > 100 and image.shape[1] > 100, name
    run = out / "train"
    for name in ("config.yaml", "last.pt", "results.csv", "metrics.jsonl"):
        assert (run / name).is_file(), name

    again = tmp_path / "again"
    cmd = [
        sys.executable, "-m", "crowdet", "eval-dets",
        "--gt", str(out / "data" / "annotation_val.odgt"),
        "--dt", str(out / "val_detections.odgt"), "--out", str(again),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    recomputed = json.loads((again / "metrics.json").read_text())
    for key in ("AP", "MR", "JI", "num_dets"):
        assert recomputed[key] == pytest.approx(metrics[key], abs=1e-6), key

    # the Python API and `crowdet detect` give the detections the evaluation scored
    line = json.loads((out / "val_detections.odgt").read_text().splitlines()[0])
    image = out / "data" / "Images" / f"{line['ID']}.jpg"
    want = sorted(d["score"] for d in line["dtboxes"])[-5:]
    boxes, scores = Detector.from_checkpoint(run / "last.pt")(image)
    assert sorted(scores.tolist())[-5:] == pytest.approx(want, abs=1e-3)
    cmd = [
        sys.executable, "-m", "crowdet", "detect", str(image),
        "--checkpoint", str(run / "last.pt"), "--out", str(tmp_path / "det"),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    detected = json.loads((tmp_path / "det" / "detections.odgt").read_text())
    assert len(detected["dtboxes"]) == len(scores) and len(scores) > 0
    assert cv2.imread(str(tmp_path / "det" / f"{line['ID']}.jpg")) is not None
