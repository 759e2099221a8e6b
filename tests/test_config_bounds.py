"""Config values out of bounds are errors naming the key path, before anything runs."""

from pathlib import Path

import pytest

from crowdet.cli import main as cli_main
from crowdet.config import load_config
from crowdet.errors import ConfigError
from crowdet.models.build import build_detector


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.input_size=0", "'data.input_size': Input should be greater than 0"),
        ("data.input_size=-32", "'data.input_size': Input should be greater than 0"),
        ("data.input_size=100", "'data.input_size': must be a multiple of data.size_divisor=32, "
         "got 100 (use 96 or 128)"),
        ("data.input_size=20", "'data.input_size': must be a multiple of data.size_divisor=32, "
         "got 20 (use 32)"),
        ("data.size_divisor=0", "'data.size_divisor': Input should be greater than or equal to 1"),
        ("train.batch_size=0", "'train.batch_size': Input should be greater than or equal to 1"),
        ("eval.batch_size=0", "'eval.batch_size': Input should be greater than or equal to 1"),
        ("train.max_iters=-5", "'train.max_iters': Input should be greater than or equal to 0"),
        ("train.lr=nan", "'train.lr': Input should be a finite number"),
        ("train.lr=.inf", "'train.lr': Input should be a finite number"),
        ("train.lr=0", "'train.lr': Input should be greater than 0"),
        ("train.lr=-0.1", "'train.lr': Input should be greater than 0"),
        ("train.log_interval=0", "'train.log_interval': Input should be greater than or equal"),
        ("train.max_bad_steps=0", "'train.max_bad_steps': Input should be greater than or equal"),
        ("train.momentum=1", "'train.momentum': Input should be less than 1"),
        ("train.steps=[0.5, 1.5]", "'train.steps.1': Input should be less than or equal to 1"),
        ("postprocess.iou_threshold=0", "'postprocess.iou_threshold': Input should be greater "),
        ("postprocess.iou_threshold=1.5", "'postprocess.iou_threshold': Input should be less"),
        ("postprocess.score_threshold=1", "'postprocess.score_threshold': Input should be less"),
        ("postprocess.max_dets=0", "'postprocess.max_dets': Input should be greater than or equal"),
        ("assign.pos_iou=0", "'assign.pos_iou': Input should be greater than 0"),
        ("assign.neg_iou=0.6", "'assign.neg_iou': must be <= assign.pos_iou=0.5, got 0.6"),
        ("assign.ignore_ioa=1.2", "'assign.ignore_ioa': Input should be less than or equal to 1"),
        ("model.neck.levels=[]", "'model.neck.levels': List should have at least 1 item"),
        ("model.neck.levels=[4,3]", "'model.neck.levels': must be increasing with no repeats"),
        ("model.neck.levels=[3,3]", "'model.neck.levels': must be increasing with no repeats"),
        ("model.anchors.octave_scales=[]", "'model.anchors.octave_scales': List should have at"),
        ("model.anchors.aspect_ratios=[0]", "'model.anchors.aspect_ratios.0': Input should be gr"),
        ("model.head.prior_prob=0", "'model.head.prior_prob': Input should be greater than 0"),
        ("model.backbone.width=0", "'model.backbone.width': Input should be greater than or eq"),
        ("augment.hflip=2", "'augment.hflip': Input should be less than or equal to 1"),
        ("augment.scale=[1.2,0.8]", "'augment.scale': must be [low, high] with low <= high"),
        ("loss.focal_gamma=-1", "'loss.focal_gamma': Input should be greater than or equal to 0"),
        ("train.budget_curve=[[900,0.7,0.7],[800,0.8,0.6]]", "'train.budget_curve': the steps "
         "of [steps, AP, MR^-2] rows must ascend, got [900, 800]"),
        ("train.budget_curve=[[900,1.7,0.7]]", "'train.budget_curve.0.1': Input should be less "),
        ("train.budget_curve=[[0,0.7,0.7]]", "'train.budget_curve.0.0': Input should be greater "),
    ],
)  # fmt: skip
def test_out_of_bounds_is_an_error_naming_the_key(override, message):
    with pytest.raises(ConfigError) as e:
        load_config("configs/tiny.yaml", [override])
    assert str(e.value).startswith(f"configs/tiny.yaml + overrides: {message}")
    assert "\n" not in str(e.value)


def test_in_bounds_edges_are_accepted():
    cfg = load_config(
        "configs/tiny.yaml",
        ["train.max_iters=0", "postprocess.iou_threshold=1",
         "postprocess.score_threshold=0", "assign.neg_iou=0.5", "data.size_divisor=1",
         "data.input_size=33"],
    )  # fmt: skip
    assert (cfg.data.input_size, cfg.train.max_iters, cfg.postprocess.iou_threshold) == (33, 0, 1)


@pytest.mark.parametrize("name", ["../../escaped", "a/b", "..", ".", "", "a\\b", "/abs"])
def test_run_name_must_be_one_folder_name(name):
    with pytest.raises(ConfigError, match=r"'name': must be one folder name"):
        load_config(None, [f"name={name}"] if name else ["name=''"])


def test_run_name_may_hold_spaces_and_unicode():
    assert load_config(None, ["name=rün 1"]).name == "rün 1"


def test_train_with_input_size_0_stops_at_once_with_one_line(tmp_path, monkeypatch, capsys):
    # it used to train on empty tensors with loss 0 and exit 0
    monkeypatch.chdir(tmp_path)
    cfg = str(Path(__file__).resolve().parents[1] / "configs/tiny.yaml")
    rc = cli_main(["train", cfg, "data.input_size=0", f"data.root={tmp_path / 'data'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "'data.input_size': Input should be greater than 0" in err[0]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()


@pytest.mark.parametrize("levels", ["[6,7]", "[2,3]", "[3,4,5,7]", "[1]"])
def test_neck_levels_the_backbone_cannot_feed_are_an_error_naming_the_key(levels):
    cfg = load_config("configs/tiny.yaml", [f"model.neck.levels={levels}"])
    with pytest.raises(ConfigError, match=r"^model\.neck\.levels: levels .* cannot be built on"):
        build_detector(cfg)


@pytest.mark.parametrize("levels", [[3, 5], [4, 5, 6, 7], [5]])
def test_neck_levels_that_fit_give_features_at_their_stride(levels):
    import torch

    cfg = load_config("configs/tiny.yaml", [f"model.neck.levels={levels}"])
    model = build_detector(cfg).eval()
    with torch.no_grad():
        feats = model.neck(model.backbone(torch.zeros(1, 3, 256, 256)))
    assert [256 // f.shape[-1] for f in feats] == [2**k for k in levels]
