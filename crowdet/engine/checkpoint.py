"""Checkpoints that survive kills: atomic writes, the previous file kept, safe loading only.

A save writes `<name>.tmp` in the same folder, flushes and fsyncs it, moves the current file to
`<name>.prev` and renames the temporary file over `<name>` (os.replace is atomic on POSIX), then
fsyncs the folder. A kill at any moment leaves `<name>` or `<name>.prev` loadable.
Loading is `torch.load(map_location="cpu", weights_only=True)` only: a pickled payload is refused.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import pickle
import pickletools
import re
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
    "train.budget_clock",
    "train.budget_min_iters",
    "train.budget_curve",
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
    """Write `state` (tensors and plain data only) to `path` atomically. A failed write (disk
    full, read-only folder) removes its temporary file, leaves `path` as it was and raises a
    CrowdetError saying what happened."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
    except (OSError, RuntimeError) as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise _write_error(e, path) from None
    if keep_previous and path.exists():
        os.replace(path, previous_path(path))
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return path


def _os_error(exc: BaseException | None) -> OSError | None:
    """The OSError behind `exc`: torch.save reports a failed write as a RuntimeError whose
    context holds the OSError (`unexpected pos ...`)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _write_error(exc: BaseException, path: Path) -> CrowdetError:
    kept = f"{path} is unchanged" if path.exists() else f"no {path.name} was written"
    then = "resume the run" if path.exists() else "start again"
    os_err = _os_error(exc)
    if os_err is not None and os_err.errno in (errno.ENOSPC, errno.EDQUOT):
        return CrowdetError(
            f"no space left on {path.parent} while saving {path.name}; {kept} "
            f"and the partial file was removed: free some space, then {then}"
        )
    reason = (os_err.strerror or str(os_err)) if os_err is not None else str(exc).split("\n")[0]
    return CrowdetError(f"{path}: could not write the checkpoint ({reason}); {kept}")


_GLOBAL = re.compile(r"unsupported global:? (?:GLOBAL )?([\w.]+)", re.IGNORECASE)


def _named_object(path: Path) -> str | None:
    """What Python object a plain pickle stream would build (`posix.system`; torch's own
    tensor builders only when it names nothing else), or None when the file is not a complete
    pickle naming one. Reads opcodes only: nothing is constructed."""
    strings: list[str] = []
    named: list[str] = []
    try:
        with open(path, "rb") as f:  # the whole stream must parse, up to its STOP
            for op, arg, _ in pickletools.genops(io.BytesIO(f.read(1 << 24))):
                if op.name in ("GLOBAL", "INST"):
                    named.append(str(arg).replace(" ", "."))
                elif op.name == "STACK_GLOBAL":
                    named.append(".".join(strings[-2:]))
                elif isinstance(arg, str):
                    strings.append(arg)
    except Exception:  # not a pickle stream, or a truncated one: a corrupt file
        return None
    foreign = [n for n in named if not n.startswith(("torch.", "collections."))]
    return (foreign or named or [None])[0]


def _load_error(exc: Exception, path: Path) -> CrowdetError:
    """One line naming the file. torch's own text is never passed on for a refused file: it
    advises `weights_only=False`, which would run whatever the file holds."""
    text = str(exc)
    found = _GLOBAL.search(text)
    named = found.group(1) if found else None
    if named is None and isinstance(exc, pickle.UnpicklingError):
        named = _named_object(path)
    if named is not None:
        return CrowdetError(
            f"{path}: refused to load: it holds objects other than tensors and plain data "
            f"({named}); only weights_only checkpoints are loaded, and nothing in it was run"
        )
    # torch's reader and the OS say something useful (`failed finding central directory`);
    # the unpickler's internal errors on random bytes (`pop from empty list`) do not
    useful = isinstance(exc, RuntimeError | OSError) and text and "weights_only" not in text
    detail = ": " + " ".join(text.split()).split(". ")[0][:200] if useful else ""
    return CrowdetError(
        f"{path}: not a readable checkpoint (truncated, corrupt, or not a torch file){detail}"
    )


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint safely; CrowdetError (naming the file) if it is unreadable or unsafe."""
    path = Path(path)
    if not path.is_file():
        raise CrowdetError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # anything from reading arbitrary bytes: a one-line answer
        raise _load_error(e, path) from None
    if not isinstance(state, dict):
        raise CrowdetError(
            f"{path}: not a crowdet checkpoint (it holds a {type(state).__name__}, "
            "not a dictionary of model weights and training state)"
        )
    return state


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
