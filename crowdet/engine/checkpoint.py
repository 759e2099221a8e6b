"""Checkpoints that survive kills: atomic writes, the previous file kept, safe loading only.

A save writes `<name>.tmp` in the same folder, flushes and fsyncs it, moves the current file to
`<name>.prev` and renames the temporary file over `<name>` (os.replace is atomic on POSIX), then
fsyncs the folder. A kill at any moment leaves `<name>` or `<name>.prev` loadable.
Loading is `torch.load(map_location="cpu", weights_only=True)` only: a pickled payload is refused.
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import torch

from crowdet.config import Config, config_to_dict, diff_configs
from crowdet.errors import CrowdetError

log = logging.getLogger(__name__)


# Keys a resume may change without --force: they do not alter what the run computes.
RESUMABLE_CHANGES = (
    "train.max_iters",
    "train.time_limit",
    "train.time_budget",
    "train.threads",
    "train.device",
    "train.log_interval",
    "train.checkpoint_interval",
    "train.eval_interval",
    "train.dist_timeout",
    "train.vis_images",
    "data.workers",
    "eval.",
)


def previous_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".prev")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(state: dict, path: str | Path, keep_previous: bool = True) -> Path:
    """Write `state` (tensors and plain data only) to `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    if keep_previous and path.exists():
        os.replace(path, previous_path(path))
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint safely; CrowdetError (naming the file) if it is unreadable or unsafe."""
    path = Path(path)
    if not path.is_file():
        raise CrowdetError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CrowdetError(
            f"{path}: refused to load: it holds objects other than tensors and plain data "
            f"(only weights_only checkpoints are loaded; nothing in it was run): {e}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CrowdetError(
            f"{path}: not a readable checkpoint (truncated or corrupt?): {e}"
        ) from None


def load_with_fallback(path: str | Path) -> tuple[dict, Path]:
    """Load `path`, or its `.prev` with a warning naming both when `path` is truncated/corrupt."""
    path = Path(path)
    try:
        return load_checkpoint(path), path
    except CrowdetError as first:
        prev = previous_path(path)
        if not prev.is_file() or "refused to load" in str(first):
            raise
        log.warning("%s could not be loaded (%s); falling back to %s", path, first, prev)
        return load_checkpoint(prev), prev


def _lookup(tree: dict, dotted: str):
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


_MISSING = object()


def changed_keys(saved: dict, current: dict) -> list[str]:
    """Dotted config keys that differ between a checkpoint's config and the current one, leaving
    out RESUMABLE_CHANGES and keys the checkpoint predates that still hold their default."""
    defaults = config_to_dict(Config())
    out = []
    for key in diff_configs(saved, current):
        if key.startswith(RESUMABLE_CHANGES):
            continue
        if _lookup(saved, key) is _MISSING and _lookup(current, key) == _lookup(defaults, key):
            continue
        out.append(key)
    return out
