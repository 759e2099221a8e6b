"""Shared helpers of the engine tests: configs on the shared tiny dataset, test-only patches,
and launching DDP ranks as subprocesses with a timeout (a hang fails instead of blocking)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from crowdet.cli import main as cli_main
from crowdet.config import load_config
from crowdet.engine.trainer import Trainer

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny.yaml"
WORKER = Path(__file__).resolve().parent / "ddp_worker.py"


def tiny_overrides(data_root: Path, *extra: str) -> list[str]:
    """Overrides that point configs/tiny.yaml at the shared dataset, single-threaded, quiet."""
    return [f"data.root={data_root}", "train.threads=1", "train.vis_images=0", *extra]


def tiny_config(data_root: Path, *extra: str):
    return load_config(TINY, tiny_overrides(data_root, *extra))


def state_of(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def max_abs_diff(a: dict, b: dict) -> float:
    """Largest absolute difference over the floating-point entries of two state dicts."""
    assert a.keys() == b.keys()
    diffs = [
        (a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point()
    ]
    return max(diffs)


def train_cli(data, run, *extra, resume=False, force=False) -> int:
    argv = ["train", str(TINY), *tiny_overrides(data, *extra), "--out", str(run)]
    return cli_main(argv + ["--resume"] * resume + ["--force"] * force)


def stop_after(monkeypatch, iteration: int) -> None:
    """Deliver a SIGTERM-equivalent stop right after `iteration` (the signal handler's flag)."""
    original = Trainer._periodic

    def periodic(self):
        original(self)
        if self.iter == iteration:
            self.stop_signal = signal.SIGTERM

    monkeypatch.setattr(Trainer, "_periodic", periodic)


def assert_same_training_state(a: dict, b: dict) -> None:
    assert a["iter"] == b["iter"] and a["epoch"] == b["epoch"]
    assert a["batch_in_epoch"] == b["batch_in_epoch"]
    for key in ("model", "ema"):
        assert (key in a) == (key in b)
        if key in a:
            for name in a[key]:
                assert torch.equal(a[key][name], b[key][name]), f"{key}.{name} differs"
    opt_a, opt_b = a["optimizer"]["state"], b["optimizer"]["state"]
    assert opt_a.keys() == opt_b.keys()
    for i in opt_a:
        for k in opt_a[i]:
            assert torch.equal(torch.as_tensor(opt_a[i][k]), torch.as_tensor(opt_b[i][k]))
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"]


# ---- test-only patches -----------------------------------------------------------------------
def _frozen_bn_forward(self, x):
    return F.batch_norm(
        x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
    )


def freeze_batchnorm(set_attr=setattr) -> None:
    """Make every BatchNorm use its running statistics in training too: the model's output per
    image then no longer depends on which other images share its batch (or its rank).
    set_attr: pytest's monkeypatch.setattr to undo it after a test."""
    set_attr(nn.BatchNorm2d, "forward", _frozen_bn_forward)


def inject_nan(calls: set[int], set_attr=setattr) -> list[int]:
    """Make DenseDetector.loss return a NaN 'cls' term on the given 0-based call numbers;
    -> the list that counts the calls."""
    from crowdet.models.detector import DenseDetector

    original = DenseDetector.loss
    counter: list[int] = []

    def loss(self, batch):
        out = original(self, batch)
        if len(counter) in calls:
            out = {**out, "cls": out["cls"] * float("nan")}
        counter.append(1)
        return out

    set_attr(DenseDetector, "loss", loss)
    return counter


# ---- processes -------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "WORLD_SIZE"))}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), **extra)
    return env


def launch_ranks(world: int, args: list[str], timeout: float, patches: str = "", cwd=None):
    """Run `ddp_worker.py ARGS` as `world` DDP ranks (torchrun's variables set by hand);
    -> [(returncode, stderr text)] per rank. Every rank is killed if one is still running after
    `timeout` seconds, and the test fails."""
    port = str(free_port())
    procs, logs = [], []
    for rank in range(world):
        env = child_env(
            RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
            LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=port,
            CROWDET_TEST_PATCHES=patches,
        )  # fmt: skip
        logs.append(tempfile.TemporaryFile("w+"))
        cmd = [sys.executable, str(WORKER), *args]
        procs.append(
            subprocess.Popen(cmd, env=env, cwd=cwd or REPO, stdout=logs[-1], stderr=logs[-1])
        )
    deadline = time.monotonic() + timeout
    return [_wait(p, log, procs, deadline, timeout) for p, log in zip(procs, logs)]


def _wait(proc, log, procs, deadline, timeout):
    try:
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        raise AssertionError(f"a DDP rank still ran after {timeout}s (hang?)") from None
    log.seek(0)
    return proc.returncode, log.read()
