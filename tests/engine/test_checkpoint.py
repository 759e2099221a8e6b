"""Checkpoints: atomic writes with the previous file kept, fallback on truncation, kill -9 at any
moment, and refusal of pickled payloads (nothing in them runs)."""

import logging
import os
import pickle
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from engine_helpers import REPO, child_env, tiny_overrides

from crowdet.cli import main as cli_main
from crowdet.config import Config, config_to_dict
from crowdet.engine.checkpoint import (
    changed_keys,
    load_checkpoint,
    load_with_fallback,
    previous_path,
    save_checkpoint,
)
from crowdet.errors import CrowdetError


def state(n: int) -> dict:
    return {"iter": n, "w": torch.full((64,), float(n)), "nested": {"lr": [0.1 * n]}}


def test_save_keeps_previous_and_loads_exactly(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(state(1), path)
    save_checkpoint(state(2), path)
    now, prev = load_checkpoint(path), load_checkpoint(previous_path(path))
    assert now["iter"] == 2 and torch.equal(now["w"], torch.full((64,), 2.0))
    assert prev["iter"] == 1 and prev["nested"] == {"lr": [0.1]}
    assert not (tmp_path / "last.pt.tmp").exists()


@pytest.mark.parametrize("cut", [0, 10, 200, -1])
def test_truncated_checkpoint_falls_back_with_a_warning_naming_both(tmp_path, caplog, cut):
    path = tmp_path / "last.pt"
    save_checkpoint(state(1), path)
    save_checkpoint(state(2), path)
    data = path.read_bytes()
    path.write_bytes(data[: cut if cut >= 0 else len(data) // 2])
    with caplog.at_level(logging.WARNING):
        loaded, used = load_with_fallback(path)
    assert loaded["iter"] == 1 and used == previous_path(path)
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert str(path) in warning and str(previous_path(path)) in warning


def test_both_unreadable_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(b"not a checkpoint")
    previous_path(path).write_bytes(b"")
    with pytest.raises(CrowdetError, match="last.pt"):
        load_with_fallback(path)


class _Payload:
    """Unpickling this runs os.system: a checkpoint must never get that far."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_malicious(path, marker, legacy: bool):
    payload = {"model": {"w": torch.zeros(2)}, "extra": _Payload(marker)}
    if legacy:  # a plain pickle stream, the pre-zip torch format
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch on the legacy format
@pytest.mark.parametrize("legacy", [False, True])
def test_pickled_payload_is_refused_and_does_not_run(tmp_path, legacy):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    write_malicious(evil, marker, legacy)
    with pytest.raises(CrowdetError, match="refused to load"):
        load_checkpoint(evil)
    save_checkpoint(state(1), tmp_path / "last.pt")
    os.replace(evil, tmp_path / "last.pt")  # a refused file must not fall back silently either
    with pytest.raises(CrowdetError, match="refused to load"):
        load_with_fallback(tmp_path / "last.pt")
    assert not marker.exists()


def test_train_resume_from_a_malicious_checkpoint_runs_nothing(tmp_path, tiny_data, capsys):
    marker, evil, run = tmp_path / "pwned", tmp_path / "evil.pt", tmp_path / "run"
    write_malicious(evil, marker, legacy=False)
    argv = ["train", str(REPO / "configs/tiny.yaml"), *tiny_overrides(tiny_data)]
    rc = cli_main([*argv, "--out", str(run), "--resume", str(evil)])
    assert rc == 2
    assert "refused to load" in capsys.readouterr().err
    assert not marker.exists()
    assert not run.exists()  # nothing was built or written


def test_changed_keys_lists_what_matters_only():
    saved = config_to_dict(Config())
    current = config_to_dict(Config())
    current["train"]["lr"] = 0.5
    current["model"]["neck"]["channels"] = 8
    current["train"]["max_iters"] = 10  # may change: a longer run
    current["data"]["workers"] = 4  # may change: same batches
    del saved["train"]["ema"]  # a key the checkpoint predates, at its default: not a change
    assert changed_keys(saved, current) == ["model.neck.channels", "train.lr"]
    current["train"]["ema"] = True  # ...unless it is switched on
    assert changed_keys(saved, current) == ["model.neck.channels", "train.ema", "train.lr"]


class _Killed(BaseException):
    pass


@pytest.mark.parametrize("die_at", [1, 2])  # after writing .tmp / between the two renames
def test_death_inside_a_save_leaves_the_last_good_checkpoint(tmp_path, monkeypatch, die_at):
    # kill -9 runs no clean-up code: an exception at the same point leaves the same files
    path = tmp_path / "last.pt"
    save_checkpoint(state(1), path)
    save_checkpoint(state(2), path)
    calls = []
    real_replace = os.replace

    def replace(src, dst):
        calls.append(1)
        if len(calls) == die_at:
            raise _Killed
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(_Killed):
        save_checkpoint(state(3), path)
    monkeypatch.undo()
    loaded, _ = load_with_fallback(path)
    assert loaded["iter"] == 2
    save_checkpoint(state(4), path)  # a stale .tmp does not get in the way of the next save
    assert load_checkpoint(path)["iter"] == 4


SAVE_LOOP = """
import sys, torch
from crowdet.engine.checkpoint import save_checkpoint
path = sys.argv[1]
n = 0
while True:
    n += 1
    # a few MB, every tensor filled with n: a mix of two saves would show
    state = {"n": n, "a": torch.full((400_000,), float(n)), "b": [torch.full((9,), n)]}
    save_checkpoint(state, path)
    if n == 1:
        print("ready", flush=True)
"""


@pytest.mark.slow
def test_kill_9_at_random_moments_leaves_a_loadable_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    rng = random.Random(0)
    seen = []
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", SAVE_LOOP, str(path)],
            env=child_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.0, 0.4))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        loaded, _ = load_with_fallback(path)
        n = loaded["n"]
        assert torch.equal(loaded["a"], torch.full((400_000,), float(n)))
        assert torch.equal(loaded["b"][0], torch.full((9,), n))
        seen.append(n)
    assert max(seen) > 1  # the kills landed while saves were going on
