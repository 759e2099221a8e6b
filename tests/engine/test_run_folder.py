"""The run folder: an existing run is never started over silently, a refused resume leaves the
folder as it was, a folder that cannot be written is a one-line error, and a second Ctrl-C during
the save neither tears the checkpoint nor ends in a traceback."""

import errno
import os
import signal

import pytest
from engine_helpers import TINY, state_of, tiny_config, tiny_overrides, train_cli

from crowdet.cli import main as cli_main
from crowdet.engine import run_folder
from crowdet.engine import trainer as trainer_module
from crowdet.engine.trainer import Trainer
from crowdet.errors import CrowdetError


@pytest.fixture
def two_steps(tiny_data, tmp_path):
    run = tmp_path / "run"
    assert train_cli(tiny_data, run, "train.max_iters=2", "train.checkpoint_interval=1") == 0
    return run


def files(run):
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}


def test_a_refused_resume_leaves_the_run_folder_as_it_was(tiny_data, two_steps, capsys):
    before = files(two_steps)
    assert train_cli(tiny_data, two_steps, "train.lr=0.01", resume=True) == 2
    assert "differs from the checkpoint's in train.lr" in capsys.readouterr().err
    assert files(two_steps) == before  # config.yaml kept, no new events file


def test_a_forced_resume_keeps_the_earlier_config(tiny_data, two_steps):
    old = (two_steps / "config.yaml").read_text()
    assert train_cli(tiny_data, two_steps, "train.lr=0.01", resume=True, force=True) == 0
    assert (two_steps / "config.yaml.prev").read_text() == old
    assert "lr: 0.01" in (two_steps / "config.yaml").read_text()


def test_a_new_run_into_an_existing_one_is_refused(tiny_data, two_steps, capsys):
    before = files(two_steps)
    assert train_cli(tiny_data, two_steps, "train.max_iters=1") == 2
    err = capsys.readouterr().err
    assert f"{two_steps} already holds a run (iteration 2); pass --resume" in err
    assert "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert files(two_steps) == before


def test_overwrite_starts_over(tiny_data, two_steps):
    argv = ["train", str(TINY), *tiny_overrides(tiny_data, "train.max_iters=1")]
    assert cli_main([*argv, "--out", str(two_steps), "--overwrite"]) == 0
    assert state_of(two_steps / "last.pt")["iter"] == 1
    assert state_of(two_steps / "last.pt.prev")["iter"] == 1  # the earlier run's are gone
    lines = (two_steps / "metrics.jsonl").read_text().splitlines()
    assert all('"iter": 1' in x for x in lines)


@pytest.mark.parametrize("case", ["file", "under a file", "read-only"])
def test_an_unwritable_out_is_a_one_line_error(tiny_data, tmp_path, capsys, monkeypatch, case):
    (tmp_path / "f").write_text("x")
    out = {"file": tmp_path / "f", "under a file": tmp_path / "f" / "run"}.get(case, tmp_path / "r")
    if case == "read-only":  # as root chmod does not stop writes: the file system's answer

        def read_only(*a, **k):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))

        monkeypatch.setattr(run_folder.tempfile, "TemporaryFile", read_only)
    assert train_cli(tiny_data, out, "train.max_iters=1") == 2
    err = capsys.readouterr().err.strip()
    why = {
        "file": "it exists and is not a folder",
        "under a file": "a part of that path is a file, not a folder",
        "read-only": "cannot write there (Read-only file system)",
    }[case]
    assert err == f"crowdet train: error: run folder {out}: {why}; choose another --out"


def test_a_second_ctrl_c_during_the_save_does_not_tear_it(tiny_data, tmp_path, monkeypatch):
    real_save = trainer_module.save_checkpoint
    calls = []

    def save(state, path):
        calls.append(state["iter"])
        if state["iter"] == 2:  # the first Ctrl-C came during step 2; here comes the second
            os.kill(os.getpid(), signal.SIGINT)
        return real_save(state, path)

    def periodic(self):
        if self.iter == 2:
            self._on_signal(signal.SIGINT)

    monkeypatch.setattr(trainer_module, "save_checkpoint", save)
    monkeypatch.setattr(Trainer, "_periodic", periodic)
    trainer = Trainer(tiny_config(tiny_data, "train.max_iters=5"), tmp_path, progress=False)
    assert trainer.train() is None  # stopped, not interrupted
    assert calls == [2] and state_of(tmp_path / "last.pt")["iter"] == 2
    assert not (tmp_path / "last.pt.tmp").exists()


def test_existing_run_reads_the_iteration(tmp_path):
    assert run_folder.existing_run(tmp_path) is None
    (tmp_path / "config.yaml").write_text("name: x\n")
    assert run_folder.existing_run(tmp_path) == "no checkpoint yet"
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CrowdetError, match="its last.pt is unreadable"):
        run_folder.refuse_existing_run(tmp_path)
