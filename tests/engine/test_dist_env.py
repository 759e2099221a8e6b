"""The process layout read from torchrun's variables, the device each rank takes, and which
checkpoint `crowdet train` continues from (after a torchrun restart: the run's own last.pt)."""

from argparse import Namespace

import pytest
import torch

from crowdet.commands import train as train_command
from crowdet.engine import dist
from crowdet.errors import CrowdetError

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RESTART_COUNT",
                 "TORCHELASTIC_MAX_RESTARTS")  # fmt: skip


@pytest.fixture
def env(monkeypatch):
    for name in TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_one_process_without_torchrun(env):
    assert dist.env_info() == dist.DistInfo(0, 1, 0)
    info, device = dist.init_distributed("cpu")
    assert info.is_main and info.world == 1 and device == torch.device("cpu")
    assert not dist.is_distributed()
    assert dist.any_across_ranks([True, False], device) == [True, False]
    assert dist.gather_objects({"a": 1}) == [{"a": 1}]
    value = torch.tensor(3.0)
    assert dist.mean_across_ranks(value) is value


def test_layout_and_device_from_torchrun_variables(env):
    env.setenv("RANK", "5")
    env.setenv("WORLD_SIZE", "8")
    env.setenv("LOCAL_RANK", "1")
    assert dist.env_info() == dist.DistInfo(5, 8, 1)
    assert not dist.env_info().is_main
    # under torchrun a CUDA device is the local rank's, whatever index the config names
    assert dist.resolve_device("cuda", 1) == torch.device("cuda", 1)
    assert dist.resolve_device("cuda:0", 1) == torch.device("cuda", 1)
    assert dist.resolve_device("cpu", 1) == torch.device("cpu")


def args(resume=None, out=None):
    return Namespace(resume=resume, out=out, force=False)


def test_resume_path_choices(env, tmp_path):
    last = tmp_path / "last.pt"
    assert train_command._resume_path(args(), tmp_path) is None
    assert train_command._resume_path(args(resume=""), tmp_path) == last
    assert train_command._resume_path(args(resume="old.pt"), tmp_path).name == "old.pt"
    env.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    assert train_command._resume_path(args(), tmp_path) is None  # nothing saved yet: start
    last.write_bytes(b"")
    assert train_command._resume_path(args(), tmp_path) == last
    assert train_command._resume_path(args(resume="old.pt"), tmp_path) == last  # latest state


def test_restarts_need_the_run_folder(env):
    env.setenv("TORCHELASTIC_MAX_RESTARTS", "3")
    with pytest.raises(CrowdetError, match="--out"):
        train_command._run_dir(args(), cfg=None)
