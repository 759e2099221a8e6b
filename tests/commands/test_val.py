"""`crowdet val CKPT [DATA]`: the checkpoint's own config; equal to `crowdet eval CONFIG
--checkpoint` to the last digit, on DATA given as odgt or COCO json alike."""

import json
from pathlib import Path

import pytest

from crowdet.cli import main
from crowdet.data.convert import convert

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
# the overrides the shared tiny run was trained with (conftest.tiny_run)
RUN_OVERRIDES = ["train.threads=1", "train.vis_images=0", "train.max_iters=16", "train.lr=0.005"]


@pytest.fixture(scope="module")
def val_out(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("val")
    assert main(["val", str(tiny_run[1] / "last.pt"), "--out", str(out)]) == 0
    return out


def metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


def test_val_equals_eval_with_the_training_config(tiny_run, val_out, tmp_path):
    data, run = tiny_run
    overrides = [f"data.root={data}", *RUN_OVERRIDES]
    argv = ["eval", str(TINY), *overrides, "--checkpoint", str(run / "last.pt")]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    assert (val_out / "metrics.json").read_text() == (tmp_path / "metrics.json").read_text()
    assert (val_out / "detections.odgt").read_text() == (tmp_path / "detections.odgt").read_text()
    assert metrics(val_out)["num_dets"] > 0
    for name in ("pr_curve.png", "mr_fppi.png", "ji_threshold.png"):
        assert (val_out / name).stat().st_size > 0


def test_val_on_data_as_coco_json_gives_the_same_metrics(tiny_run, val_out, tmp_path):
    data, run = tiny_run
    coco = tmp_path / "val.json"
    convert(data / "annotation_val.odgt", coco, "odgt", "coco", images_dir=data / "Images")
    out = tmp_path / "coco"
    argv = ["val", str(run / "last.pt"), str(coco), "--images", str(data / "Images")]
    assert main([*argv, "--out", str(out)]) == 0
    a, b = metrics(val_out), metrics(out)
    for key in ("AP", "MR", "JI", "num_images", "num_gt", "num_dets"):
        assert a[key] == b[key], key


def test_val_on_an_odgt_file_and_overrides(tiny_run, val_out, tmp_path):
    data, run = tiny_run
    out = tmp_path / "odgt"
    argv = ["val", str(run / "last.pt"), str(data / "annotation_val.odgt"), "--caltech"]
    assert main([*argv, "postprocess.max_dets=3", "--out", str(out)]) == 0
    m = metrics(out)
    assert m["num_dets"] == 3 * m["num_images"] < metrics(val_out)["num_dets"]
    assert set(m["caltech"]) >= {"Reasonable", "Heavy"}


def test_val_errors_are_one_line(tiny_run, tmp_path, capsys):
    ckpt = tiny_run[1] / "last.pt"
    cases = [
        (["val", str(ckpt), str(tmp_path / "none.odgt")], f"DATA {tmp_path / 'none.odgt'}"),
        (["val", str(tmp_path / "none.pt")], f"checkpoint not found: {tmp_path / 'none.pt'}"),
        (["val", str(ckpt), "postprocess.max_detz=3"], "unknown key 'postprocess.max_detz'"),
    ]
    for argv, expected in cases:
        assert main([*argv, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, err


def test_validation_during_training_reports_the_caltech_setups(tiny_run, tmp_path):
    from crowdet.config import load_config
    from crowdet.engine.trainer import Trainer

    overrides = [f"data.root={tiny_run[0]}", "train.threads=1", "train.vis_images=0"]
    cfg = load_config(TINY, [*overrides, "train.max_iters=1", "eval.caltech=true"])
    metrics = Trainer(cfg, tmp_path / "run").train()
    assert set(metrics["caltech"]) == {"Reasonable", "Small", "Heavy", "All"}
    logged = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert logged["caltech"] == metrics["caltech"]


def test_val_compiled_scores_like_eager(tiny_run, val_out, tmp_path, monkeypatch):
    from crowdet.models.detector import DenseDetector

    compiled = []
    original = DenseDetector.compile_for_inference
    monkeypatch.setattr(
        DenseDetector, "compile_for_inference",
        lambda self: compiled.append(self) or original(self),
    )  # fmt: skip
    data, run = tiny_run
    argv = ["val", str(run / "last.pt"), "--compile", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert len(compiled) == 1 and not compiled[0].training
    a, b = metrics(val_out), metrics(tmp_path)
    assert a["num_images"] == b["num_images"] and a["num_gt"] == b["num_gt"]
    # the same network up to float rounding: scores near the threshold may flip a detection
    assert abs(a["num_dets"] - b["num_dets"]) <= 2
    for key in ("AP", "MR", "JI"):
        assert b[key] == pytest.approx(a[key], abs=2e-3), key
