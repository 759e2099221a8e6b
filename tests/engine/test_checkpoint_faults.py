"""Checkpoint files that are not what they should be, and saves that fail: one line each, naming
the file; a failed save leaves no partial file and the previous checkpoint untouched."""

import errno
import os
import pickle
import random

import pytest
import torch

from crowdet.engine import checkpoint as C
from crowdet.engine.checkpoint import load_checkpoint, load_with_fallback, previous_path
from crowdet.errors import CrowdetError


def state(n: int) -> dict:
    return {"iter": n, "w": torch.full((50_000,), float(n))}


@pytest.mark.parametrize("seed", range(6))
def test_random_bytes_are_not_readable_and_no_unsafe_advice_is_passed_on(tmp_path, seed):
    path = tmp_path / "garbage.pt"
    rng = random.Random(seed)
    path.write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
    with pytest.raises(CrowdetError) as e:
        load_checkpoint(path)
    text = str(e.value)
    assert text.startswith(f"{path}: not a readable checkpoint (truncated, corrupt")
    assert "weights_only" not in text and "refused" not in text and "\n" not in text


class _Payload:
    def __reduce__(self):
        return (os.system, ("true",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("legacy", [False, True])
def test_a_pickle_naming_a_python_object_is_refused_naming_it(tmp_path, legacy):
    path = tmp_path / "evil.pt"
    payload = {"model": {"w": torch.zeros(2)}, "x": _Payload()}
    path.write_bytes(pickle.dumps(payload)) if legacy else torch.save(payload, path)
    with pytest.raises(CrowdetError) as e:
        load_checkpoint(path)
    text = str(e.value)
    assert text.startswith(f"{path}: refused to load: it holds objects other than tensors")
    assert "(posix.system)" in text and "nothing in it was run" in text
    assert "weights_only=False" not in text and "Re-running" not in text and "\n" not in text


def test_a_torch_file_of_something_else_than_a_dict(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(CrowdetError, match=r"list\.pt: not a crowdet checkpoint \(it holds a list"):
        load_checkpoint(path)


class _FullDisk:
    """A file whose writes fail with ENOSPC once `room` bytes are written."""

    def __init__(self, real, room: int):
        self.real, self.room = real, room

    def write(self, data):
        data = bytes(data)
        if self.room < len(data):
            self.real.write(data[: self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.real.write(data)

    def __getattr__(self, name):  # flush, fileno, close, ...
        return getattr(self.real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()


@pytest.mark.parametrize("room", [0, 4096, 150_000])  # full at once / in the header / in the data
def test_disk_full_during_a_save_says_so_removes_the_partial_file_keeps_last(
    tmp_path, monkeypatch, room
):
    path = tmp_path / "last.pt"
    C.save_checkpoint(state(1), path)
    C.save_checkpoint(state(2), path)
    real_open = open

    def full_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        return _FullDisk(f, room) if "w" in mode else f

    monkeypatch.setattr(C, "open", full_open, raising=False)
    with pytest.raises(CrowdetError) as e:
        C.save_checkpoint(state(3), path)
    monkeypatch.undo()
    assert str(e.value).startswith(f"no space left on {tmp_path} while saving last.pt;")
    assert f"{path} is unchanged" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "last.pt.tmp").exists()
    assert load_checkpoint(path)["iter"] == 2 and load_checkpoint(previous_path(path))["iter"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "last.pt.prev"]


def test_disk_full_raised_by_fsync_is_reported_the_same(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    C.save_checkpoint(state(1), path)

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(C.os, "fsync", fsync)
    with pytest.raises(CrowdetError, match=r"^no space left on .* while saving last\.pt"):
        C.save_checkpoint(state(2), path)
    monkeypatch.undo()
    assert not (tmp_path / "last.pt.tmp").exists()
    assert load_with_fallback(path)[0]["iter"] == 1


def test_other_write_errors_name_the_file_and_keep_last(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    C.save_checkpoint(state(1), path)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(C, "open", read_only, raising=False)
    with pytest.raises(CrowdetError) as e:
        C.save_checkpoint(state(2), path)
    monkeypatch.undo()
    assert str(e.value) == (
        f"{path}: could not write the checkpoint (Read-only file system); {path} is unchanged"
    )
    assert load_checkpoint(path)["iter"] == 1
