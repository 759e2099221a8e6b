"""Putting a checkpoint's weights into a model: a torch file that is no crowdet checkpoint,
another architecture and non-finite weights are refused with one line naming the file."""

import logging

import pytest
import torch
from engine_helpers import TINY

from crowdet import Detector
from crowdet.cli import main as cli_main
from crowdet.config import config_to_dict, load_config
from crowdet.engine.checkpoint import save_checkpoint
from crowdet.engine.weights import load_weights
from crowdet.errors import CrowdetError
from crowdet.models.build import build_detector


def checkpoint(path, *overrides, poison: str | None = None):
    """A hand-made checkpoint of configs/tiny.yaml + overrides; `poison` gets a NaN."""
    cfg = load_config(TINY, list(overrides))
    torch.manual_seed(0)
    weights = build_detector(cfg).state_dict()
    if poison is not None:
        weights[poison].view(-1)[0] = float("nan")
    save_checkpoint({"model": weights, "config": config_to_dict(cfg), "iter": 5}, path)
    return path


def eval_cli(ckpt, capsys, *overrides) -> tuple[int, list[str]]:
    argv = ["eval", str(TINY), "--checkpoint", str(ckpt), "data.root=/nonexistent", *overrides]
    rc = cli_main(argv)
    return rc, capsys.readouterr().err.strip().splitlines()


def test_torch_file_without_model_weights_is_not_a_crowdet_checkpoint(tmp_path, capsys):
    foreign = tmp_path / "foreign.pt"
    torch.save({"a": torch.zeros(3)}, foreign)
    rc, err = eval_cli(foreign, capsys)
    assert rc == 2 and err == [
        f"crowdet eval: error: {foreign}: not a crowdet checkpoint (no 'model' entry of weights; "
        "it holds a); pass a last.pt or best.pt written by `crowdet train`"
    ]
    with pytest.raises(CrowdetError, match=r"foreign\.pt: not a crowdet checkpoint \(no 'config'"):
        Detector.from_checkpoint(foreign)


def test_another_architecture_names_the_differing_keys(tmp_path, capsys):
    ckpt = checkpoint(tmp_path / "wide.pt", "model.backbone.width=16", "model.neck.channels=48")
    rc, err = eval_cli(ckpt, capsys)
    assert rc == 2 and err == [
        f"crowdet eval: error: {ckpt}: the checkpoint was trained with another model: "
        "model.backbone.width=16 (the config says 8), model.neck.channels=48 (the config says 32)"
        "; use the config it was trained with (config.yaml in its run folder)"
    ]


def test_weights_that_do_not_fit_without_a_config_difference_name_the_first_mismatch(tmp_path):
    cfg = load_config(TINY)
    state = {"model": build_detector(load_config(TINY, ["model.head.channels=16"])).state_dict()}
    with pytest.raises(CrowdetError) as e:
        load_weights(build_detector(cfg), state, "x.pt", cfg)
    assert str(e.value).startswith("x.pt: the weights do not fit the model the config builds (")
    assert '"head.reduce.weight"' in str(e.value) and "\n" not in str(e.value)


def test_a_model_key_that_changes_no_weight_loads_with_a_warning(tmp_path, caplog):
    ckpt = checkpoint(tmp_path / "a.pt", "model.anchors.base_scale=4.0")
    cfg = load_config(TINY)
    model = build_detector(cfg)
    with caplog.at_level(logging.WARNING):
        load_weights(model, torch.load(ckpt, weights_only=True), ckpt, cfg)
    assert f"{ckpt} was trained with other model settings: model.anchors.base_scale=4.0 " in (
        caplog.text
    )


@pytest.mark.parametrize("tensor", ["head.cls_tower.norms.0.0.running_mean", "head.cls_out.bias"])
def test_non_finite_weights_are_refused_naming_the_first_tensor(tmp_path, capsys, tensor):
    ckpt = tmp_path / "nan.pt"
    checkpoint(ckpt, poison=tensor)
    rc, err = eval_cli(ckpt, capsys)
    assert rc == 2 and len(err) == 1
    head = f"crowdet eval: error: {ckpt}: the weights are not finite ({tensor}: 1 of "
    assert err[0].startswith(head)
    with pytest.raises(CrowdetError, match=r"the weights are not finite"):
        Detector.from_checkpoint(ckpt)


def test_the_ema_weights_are_the_ones_checked_and_loaded(tmp_path):
    cfg = load_config(TINY)
    model = build_detector(cfg)
    good = {k: v.clone() for k, v in model.state_dict().items()}
    bad = {k: v.clone() for k, v in good.items()}
    bad["head.cls_out.bias"].fill_(float("inf"))
    load_weights(model, {"model": bad, "ema": good}, "x.pt", cfg)  # evaluation uses the EMA
    with pytest.raises(CrowdetError, match=r"x\.pt: the weights are not finite \(head\.cls_out"):
        load_weights(model, {"model": bad, "ema": good}, "x.pt", cfg, ema=False)


def test_resume_with_force_onto_another_architecture_is_one_line(tmp_path, tiny_data, capsys):
    ckpt = checkpoint(tmp_path / "wide.pt", "model.backbone.width=16")
    state = torch.load(ckpt, weights_only=True)
    save_checkpoint({**state, "optimizer": {}, "scheduler": {}}, ckpt)
    rc = cli_main(
        ["train", str(TINY), f"data.root={tiny_data}", "train.threads=1", "train.vis_images=0",
         "--out", str(tmp_path / "run"), "--resume", str(ckpt), "--force"]
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1] == (
        f"crowdet train: error: {ckpt}: the checkpoint was trained with another model: "
        "model.backbone.width=16 (the config says 8); use the config it was trained with "
        "(config.yaml in its run folder)"
    )
