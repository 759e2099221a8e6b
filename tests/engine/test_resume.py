"""Exact resume: N steps straight and N/2 + `--resume` + N/2 give identical weights, optimizer and
EMA states (CPU, fixed seed), at the end of an epoch and in the middle of one."""

import csv
import json
import logging

import pytest
from engine_helpers import (
    TINY,
    assert_same_training_state,
    state_of,
    stop_after,
    tiny_overrides,
    train_cli,
)

from crowdet.cli import main as cli_main
from crowdet.engine.checkpoint import previous_path

BATCHES_PER_EPOCH = 4  # configs/tiny.yaml: 16 training images, batch_size 4
MAX_ITERS = 8


CASES = {
    "end of epoch": (4, []),
    "mid-epoch": (6, []),
    "mid-epoch, accumulation 2, EMA": (3, ["train.accumulate=2", "train.ema=true"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_resume_continues_exactly(tmp_path, tiny_data, monkeypatch, case):
    stop, extra = CASES[case]
    extra = [f"train.max_iters={MAX_ITERS}", "train.checkpoint_interval=0", *extra]
    assert train_cli(tiny_data, tmp_path / "straight", *extra) == 0
    straight = state_of(tmp_path / "straight" / "last.pt")
    assert straight["iter"] == MAX_ITERS

    stop_after(monkeypatch, stop)
    assert train_cli(tiny_data, tmp_path / "run", *extra) == 143  # 128 + SIGTERM
    half = state_of(tmp_path / "run" / "last.pt")
    accumulate = 2 if "train.accumulate=2" in extra else 1
    consumed = stop * accumulate  # batches
    assert half["iter"] == stop
    assert (half["epoch"], half["batch_in_epoch"]) == divmod(consumed, BATCHES_PER_EPOCH)
    monkeypatch.undo()

    assert train_cli(tiny_data, tmp_path / "run", *extra, resume=True) == 0  # from RUN/last.pt
    assert_same_training_state(state_of(tmp_path / "run" / "last.pt"), straight)


def test_truncated_last_checkpoint_resumes_from_the_previous_one(
    tmp_path, tiny_data, monkeypatch, caplog
):
    extra = [f"train.max_iters={MAX_ITERS}", "train.checkpoint_interval=2"]
    extra += ["train.log_interval=1", "train.eval_interval=1"]
    assert train_cli(tiny_data, tmp_path / "straight", *extra) == 0
    stop_after(monkeypatch, 5)  # saves at 2, 4, then 5 on the stop: last.pt 5, last.pt.prev 4
    assert train_cli(tiny_data, tmp_path / "run", *extra) == 143
    monkeypatch.undo()
    last = tmp_path / "run" / "last.pt"
    assert state_of(previous_path(last))["iter"] == 4
    last.write_bytes(last.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING):
        assert train_cli(tiny_data, tmp_path / "run", *extra, resume=True) == 0
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert str(last) in warning and str(previous_path(last)) in warning
    assert_same_training_state(state_of(last), state_of(tmp_path / "straight" / "last.pt"))
    # iteration 5 ran twice; the logs hold it once, as the straight run's do
    for name in ("metrics.jsonl", "results.csv"):
        assert logged_iters(tmp_path / "run" / name) == logged_iters(tmp_path / "straight" / name)
    assert [i for k, i in logged_iters(last.parent / "metrics.jsonl") if k == "eval"] == list(
        range(1, MAX_ITERS + 1)
    )


def logged_iters(path):
    """(kind, iteration) of every row of metrics.jsonl or results.csv, in file order."""
    if path.suffix == ".csv":
        with open(path, newline="") as f:
            return [("eval", int(r["iter"])) for r in csv.DictReader(f)]
    return [(r["type"], r["iter"]) for r in map(json.loads, path.read_text().splitlines())]


def test_resume_with_a_changed_config_is_refused_unless_forced(tmp_path, tiny_data, capsys):
    run = tmp_path / "run"
    assert train_cli(tiny_data, run, "train.max_iters=2") == 0
    changed = ["train.max_iters=4", "train.lr=0.01", "model.head.prior_prob=0.02"]
    assert train_cli(tiny_data, run, *changed, resume=True) == 2
    err = capsys.readouterr().err
    assert "model.head.prior_prob, train.lr" in err and "--force" in err
    assert state_of(run / "last.pt")["iter"] == 2  # nothing trained
    assert train_cli(tiny_data, run, *changed, resume=True, force=True) == 0
    assert state_of(run / "last.pt")["iter"] == 4


def test_resume_without_a_path_needs_the_run_folder(tiny_data, capsys):
    argv = ["train", str(TINY), *tiny_overrides(tiny_data), "--resume"]
    assert cli_main(argv) == 2
    assert "--out" in capsys.readouterr().err
