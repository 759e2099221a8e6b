"""A stopped run exits 128 + signal after saving and drawing its plots; `--resume` takes a run
folder or a checkpoint and continues in that checkpoint's own run folder."""

import os
import signal

import pytest
from engine_helpers import TINY, state_of, stop_after, tiny_overrides

from crowdet.cli import main
from crowdet.commands.train import stop_exit_code

EXTRA = ["train.max_iters=6", "train.checkpoint_interval=0", "train.log_interval=1"]
EVAL_PLOTS = ("pr_curve.png", "mr_fppi.png", "ji_threshold.png", "predictions.png")


def train(data, *args) -> int:
    return main(["train", str(TINY), *tiny_overrides(data, *EXTRA), *map(str, args)])


def test_exit_codes_are_128_plus_the_signal():
    assert stop_exit_code(signal.SIGINT) == 130
    assert stop_exit_code(signal.SIGTERM) == 143
    assert stop_exit_code(None) == 143  # a stop agreed from another rank's SIGTERM


@pytest.mark.slow
def test_stop_saves_plots_and_resume_of_the_folder_continues_in_it(
    tmp_path, tiny_data, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)  # a new run folder would appear under runs/train here
    run = tmp_path / "run"
    stop_after(monkeypatch, 3)
    assert train(tiny_data, "--out", run) == 143
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    assert state_of(run / "last.pt")["iter"] == 3
    assert (run / "plots" / "training_curves.png").stat().st_size > 0
    assert f"continue with --resume {run}" in capsys.readouterr().out

    assert train(tiny_data, "--resume", run) == 0  # a run folder, no --out
    assert state_of(run / "last.pt")["iter"] == 6
    assert not (tmp_path / "runs").exists()
    for name in (*EVAL_PLOTS, "training_curves.png"):
        assert (run / "plots" / name).stat().st_size > 0, name


@pytest.mark.slow
def test_resume_of_a_checkpoint_continues_in_its_run_folder(tmp_path, tiny_data, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    stop_after(monkeypatch, 2)
    assert train(tiny_data, "--out", run) == 143
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    os.replace(run / "last.pt", run / "kept.pt")
    assert train(tiny_data, "--resume", run / "kept.pt") == 0
    assert state_of(run / "last.pt")["iter"] == 6 and not (tmp_path / "runs").exists()


def test_resume_of_a_folder_without_a_checkpoint_is_one_line(tmp_path, tiny_data, capsys):
    (tmp_path / "empty").mkdir()
    assert train(tiny_data, "--resume", tmp_path / "empty") == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"crowdet train: error: --resume {tmp_path / 'empty'}: a folder without last.pt "
        "(not a run folder)"
    )
