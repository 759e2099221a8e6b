"""SIGTERM / SIGINT: the step in progress finishes, last.pt is saved at that iteration, the process
exits with 128 + the signal (143 / 130, what schedulers read as "terminated"), and a resume ends
exactly where a straight run ends."""

import os
import signal
import subprocess
import sys
import threading

import pytest
import torch
from engine_helpers import (
    REPO,
    TINY,
    assert_same_training_state,
    child_env,
    state_of,
    tiny_overrides,
    train_cli,
)

from crowdet.engine.data import make_loader
from crowdet.engine.trainer import Trainer

EXTRA = ["train.max_iters=30", "train.log_interval=1", "train.checkpoint_interval=0"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory, tiny_data):
    run = tmp_path_factory.mktemp("straight")
    assert train_cli(tiny_data, run, *EXTRA) == 0
    return state_of(run / "last.pt")


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_sigterm_saves_the_current_iteration_and_resume_continues(
    tmp_path, tiny_data, straight, workers
):
    """With data workers the signal goes to the whole process group, as `timeout`, a terminal
    or a batch scheduler sends it: the workers must not die under the loader before the save."""
    run = tmp_path / "run"
    extra = [*EXTRA, f"data.workers={workers}"]
    cmd = [sys.executable, "-m", "crowdet", "train", str(TINY), *tiny_overrides(tiny_data, *extra)]
    proc = subprocess.Popen(
        [*cmd, "--out", str(run)],
        cwd=REPO,
        env=child_env(),
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, workers included
    )
    watchdog = threading.Timer(120, proc.kill)  # a hang fails the test instead of blocking
    watchdog.start()
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if "iter 1/30" in line:
                os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
    finally:
        watchdog.cancel()
    log = "".join(lines)
    assert proc.returncode == 143, log  # 128 + SIGTERM
    assert "received SIGTERM" in log and "resume with --resume" in log
    saved = state_of(run / "last.pt")
    logged = [int(x.split("iter ")[1].split("/")[0]) for x in log.splitlines() if " iter " in x]
    assert 1 <= max(logged) <= saved["iter"] < 30  # the iteration in progress, then stopped
    assert not (run / "results.csv").exists()  # no evaluation after a stop

    assert train_cli(tiny_data, run, *extra, resume=True) == 0
    assert_same_training_state(state_of(run / "last.pt"), straight)


def test_sigint_in_process_stops_after_the_step(tmp_path, tiny_data, monkeypatch, straight):
    original = Trainer._periodic

    def periodic(self):
        if self.iter == 7:
            os.kill(os.getpid(), signal.SIGINT)  # caught by the trainer's handler
        original(self)

    monkeypatch.setattr(Trainer, "_periodic", periodic)
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when run as a background job
    assert train_cli(tiny_data, tmp_path, *EXTRA) == 130  # 128 + SIGINT
    monkeypatch.undo()
    assert state_of(tmp_path / "last.pt")["iter"] == 7
    assert signal.getsignal(signal.SIGINT) is before  # the caller's handler is restored
    assert train_cli(tiny_data, tmp_path, *EXTRA, resume=True) == 0
    assert_same_training_state(state_of(tmp_path / "last.pt"), straight)


class _Dispositions(torch.utils.data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        return torch.tensor([signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)])


def test_data_workers_leave_group_signals_to_the_trainer():
    """A worker killed by a group-wide SIGTERM fails the loader ('worker exited unexpectedly')
    before the trainer can save: workers ignore SIGINT and SIGTERM and end with their parent."""
    loader = make_loader(_Dispositions(), [[0], [1]], workers=1, size_divisor=32)
    loader.collate_fn = torch.stack
    got = torch.cat(list(loader))
    assert (got == int(signal.SIG_IGN)).all(), got
