"""SIGTERM / SIGINT: the step in progress finishes, last.pt is saved at that iteration, the process
exits cleanly, and a resume ends exactly where a straight run ends."""

import os
import signal
import subprocess
import sys
import threading

import pytest
from engine_helpers import (
    REPO,
    TINY,
    assert_same_training_state,
    child_env,
    state_of,
    tiny_overrides,
    train_cli,
)

from crowdet.engine.trainer import Trainer

EXTRA = ["train.max_iters=30", "train.log_interval=1", "train.checkpoint_interval=0"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory, tiny_data):
    run = tmp_path_factory.mktemp("straight")
    assert train_cli(tiny_data, run, *EXTRA) == 0
    return state_of(run / "last.pt")


@pytest.mark.slow
def test_sigterm_saves_the_current_iteration_and_resume_continues(tmp_path, tiny_data, straight):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "crowdet", "train", str(TINY), *tiny_overrides(tiny_data, *EXTRA)]
    proc = subprocess.Popen(
        [*cmd, "--out", str(run)], cwd=REPO, env=child_env(), stderr=subprocess.PIPE, text=True
    )
    watchdog = threading.Timer(120, proc.kill)  # a hang fails the test instead of blocking
    watchdog.start()
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if "iter 1/30" in line:
                proc.send_signal(signal.SIGTERM)
        proc.wait()
    finally:
        watchdog.cancel()
    log = "".join(lines)
    assert proc.returncode == 0, log
    assert "received SIGTERM" in log and "resume with --resume" in log
    saved = state_of(run / "last.pt")
    logged = [int(x.split("iter ")[1].split("/")[0]) for x in log.splitlines() if " iter " in x]
    assert 1 <= max(logged) <= saved["iter"] < 30  # the iteration in progress, then stopped
    assert not (run / "results.csv").exists()  # no evaluation after a stop

    assert train_cli(tiny_data, run, *EXTRA, resume=True) == 0
    assert_same_training_state(state_of(run / "last.pt"), straight)


def test_sigint_in_process_stops_after_the_step(tmp_path, tiny_data, monkeypatch, straight):
    original = Trainer._periodic

    def periodic(self):
        if self.iter == 7:
            os.kill(os.getpid(), signal.SIGINT)  # caught by the trainer's handler
        original(self)

    monkeypatch.setattr(Trainer, "_periodic", periodic)
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when run as a background job
    assert train_cli(tiny_data, tmp_path, *EXTRA) == 0
    monkeypatch.undo()
    assert state_of(tmp_path / "last.pt")["iter"] == 7
    assert signal.getsignal(signal.SIGINT) is before  # the caller's handler is restored
    assert train_cli(tiny_data, tmp_path, *EXTRA, resume=True) == 0
    assert_same_training_state(state_of(tmp_path / "last.pt"), straight)
