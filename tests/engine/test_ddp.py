"""DDP on the CPU (gloo), 2 processes started like torchrun starts them, each with a timeout so a
hang fails the test: training finishes, ranks agree on skipped steps, only rank 0 writes, small and
ignore-only data finish, the result matches one process with the same total batch, the sharded
evaluation matches the single-process one, and a torchrun restart resumes from last.pt."""

import json
import os
import signal
import subprocess
import sys
import tempfile

import pytest
import torch
from engine_helpers import (
    REPO,
    TINY,
    WORKER,
    child_env,
    free_port,
    freeze_batchnorm,
    launch_ranks,
    max_abs_diff,
    state_of,
    tiny_config,
    tiny_overrides,
    train_cli,
)

from crowdet.engine.trainer import Trainer

pytestmark = pytest.mark.slow
TIMEOUT = 240  # seconds for a whole 2-process run; a hang fails


def torchrun(args: list[str], patches: str, *torchrun_args: str, env=None) -> tuple[int, str]:
    """torchrun (the multi-node form, one node) of ddp_worker.py -> (exit code, output). On a
    timeout the launcher and its workers are killed together and the test fails."""
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
        "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}",
        *torchrun_args, str(WORKER), *args,
    ]  # fmt: skip
    env = child_env(CROWDET_TEST_PATCHES=patches, **(env or {}))
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=out, stderr=out, start_new_session=True
        )
        try:
            proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            out.seek(0)
            log = out.read()[-4000:]
            raise AssertionError(f"torchrun still ran after {TIMEOUT}s:\n{log}") from None
        out.seek(0)
        return proc.returncode, out.read()


def train_args(data, run, *extra):
    extra = ["train.dist_timeout=60", *extra]  # a lost peer fails within a minute
    return ["train", str(TINY), *tiny_overrides(data, *extra), "--out", str(run)]


def assert_all_ok(results):
    for rank, (rc, log) in enumerate(results):
        assert rc == 0, f"rank {rank} failed:\n{log[-3000:]}"


def test_torchrun_trains_agrees_on_a_nan_step_and_only_rank0_writes(tmp_path, tiny_data):
    run = tmp_path / "run"
    rc, log = torchrun(train_args(tiny_data, run, "train.max_iters=6"), "nan_rank1_call2")
    assert rc == 0, log[-4000:]
    state = state_of(run / "last.pt")
    assert state["iter"] == 6
    assert state["skipped"] == {"non-finite loss": 1}  # rank 1's NaN, counted by rank 0 too
    steps = {int(s["step"]) for s in state["optimizer"]["state"].values()}
    assert steps == {5}
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    iters = [r["iter"] for r in records if r["type"] == "train"]
    assert iters == [1, 2, 4, 6]  # one writer (log_interval 2, plus the first step)
    assert len((run / "results.csv").read_text().splitlines()) == 2  # header + one evaluation
    assert log.count("run folder:") == 1


def test_two_ranks_match_one_process_with_the_same_total_batch(tmp_path, tiny_data, monkeypatch):
    # BatchNorm statistics are per rank without SyncBN (CUDA only), so both runs use BatchNorm's
    # running statistics (freeze_batchnorm); then only float summation order differs.
    # eval.batch_size=1: a detection's score does not depend on the images batched with it
    extra = ["train.max_iters=4", "postprocess.score_threshold=0.001", "eval.batch_size=1"]
    results = launch_ranks(
        2, train_args(tiny_data, tmp_path / "ddp", "train.batch_size=2", *extra), TIMEOUT,
        patches="frozen_bn",
    )  # fmt: skip
    assert_all_ok(results)
    freeze_batchnorm(monkeypatch.setattr)
    assert train_cli(tiny_data, tmp_path / "one", "train.batch_size=4", *extra) == 0
    ddp, one = state_of(tmp_path / "ddp" / "last.pt"), state_of(tmp_path / "one" / "last.pt")
    scale = max(v.abs().max().item() for v in one["model"].values() if v.is_floating_point())
    assert max_abs_diff(ddp["model"], one["model"]) <= 1e-6 * scale  # measured: ~3e-8 * scale
    assert ddp["iter"] == one["iter"] == 4
    assert (ddp["epoch"], ddp["batch_in_epoch"]) == (one["epoch"], one["batch_in_epoch"])

    # the sharded, gathered evaluation equals a one-process evaluation of the same weights
    sharded = (tmp_path / "ddp" / "results.csv").read_text().splitlines()[1].split(",")
    cfg = tiny_config(tiny_data, "train.batch_size=2", "train.dist_timeout=60", *extra)
    trainer = Trainer(cfg, tmp_path / "check", progress=False)
    trainer.model.load_state_dict(ddp["model"])
    metrics = trainer.validate()
    header = (tmp_path / "ddp" / "results.csv").read_text().splitlines()[0].split(",")
    row = dict(zip(header, sharded))
    assert metrics["num_dets"] > 0
    for key in ("AP", "MR", "JI"):
        assert float(row[key]) == pytest.approx(metrics[key], abs=1e-12)


def test_a_one_image_dataset_finishes_on_two_ranks(tmp_path, tiny_data):
    results = launch_ranks(
        2, train_args(tiny_data, tmp_path, "data.max_images=1", "train.max_iters=3"), TIMEOUT
    )
    assert_all_ok(results)
    assert state_of(tmp_path / "last.pt")["iter"] == 3


def ignore_only_annotations(data, path):
    """The first two training images, the second with every box turned into an ignore region."""
    lines = (data / "annotation_train.odgt").read_text().splitlines()[:2]
    second = json.loads(lines[1])
    for box in second["gtboxes"]:
        box["tag"] = "mask"
    path.write_text(lines[0] + "\n" + json.dumps(second) + "\n")
    return path


def test_a_rank_whose_batch_has_only_ignore_regions_finishes(tmp_path, tiny_data):
    ann = ignore_only_annotations(tiny_data, tmp_path / "ignore_only.odgt")
    extra = [f"data.train_ann={ann}", "train.batch_size=1", "train.max_iters=3"]
    results = launch_ranks(2, train_args(tiny_data, tmp_path / "run", *extra), TIMEOUT)
    assert_all_ok(results)
    state = state_of(tmp_path / "run" / "last.pt")
    assert state["iter"] == 3 and not state["skipped"]
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_torchrun_restart_resumes_from_the_run_folder(tmp_path, tiny_data):
    run = tmp_path / "run"
    args = train_args(tiny_data, run, "train.max_iters=5", "train.checkpoint_interval=2")
    # the launcher's store must not be shared with the workers across restarts, or a restarted
    # rank may read its peer's address from the previous attempt (pytorch/pytorch#135712)
    no_shared_store = {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    rc, log = torchrun(args, "crash_rank1_iter3", "--max-restarts", "1", env=no_shared_store)
    assert rc == 0, log[-4000:]
    assert "test crash on rank 1 after iteration 3" in log
    assert "torchrun restart 1: continuing from" in log
    assert "at iteration 2" in log  # the checkpoint saved before the crash
    assert state_of(run / "last.pt")["iter"] == 5
