"""The run folder of `train --out`: made (or a one-line error), never silently reused, and
written only once the run is accepted, so a refused resume leaves it as it was."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import yaml

from crowdet.config import Config, config_to_dict
from crowdet.data.atomic import atomic_write_text
from crowdet.errors import CrowdetError

log = logging.getLogger("crowdet.train")

# What a training run writes into its folder (TensorBoard's events.out.tfevents.* aside).
RUN_FILES = (
    "last.pt", "last.pt.prev", "best.pt", "best.pt.prev", "config.yaml", "config.yaml.prev",
    "metrics.jsonl", "results.csv", "bad_step.json",
)  # fmt: skip


def next_run_dir(base: Path, name: str) -> Path:
    """base/name-1, or the next number not taken."""
    n = 1
    while (base / f"{name}-{n}").exists():
        n += 1
    return base / f"{name}-{n}"


def make_run_dir(run_dir: Path) -> None:
    """Create `run_dir` (and its parents) and check that a file can be written there.

    Raises:
        CrowdetError: one line naming the folder: it is a file, under a file, or not writable.
    """
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=run_dir, prefix=".write-test-"):
            pass
    except FileExistsError:
        why = "it exists and is not a folder"
    except NotADirectoryError:
        why = "a part of that path is a file, not a folder"
    except OSError as e:
        why = f"cannot write there ({e.strerror or e})"
    else:
        return
    raise CrowdetError(f"run folder {run_dir}: {why}; choose another --out")


def existing_run(run_dir: Path) -> str | None:
    """What `run_dir` holds of an earlier run ('iteration 20', ...), or None when no run."""
    from crowdet.engine.checkpoint import load_checkpoint

    run_dir = Path(run_dir)
    last = run_dir / "last.pt"
    if last.is_file():
        try:
            return f"iteration {int(load_checkpoint(last)['iter'])}"
        except (CrowdetError, KeyError, TypeError, ValueError):
            return "its last.pt is unreadable"
    if (run_dir / "config.yaml").is_file():
        return "no checkpoint yet"
    return None


def refuse_existing_run(run_dir: Path) -> None:
    """CrowdetError when `run_dir` already holds a run (a new run would overwrite it)."""
    held = existing_run(run_dir)
    if held is not None:
        raise CrowdetError(
            f"{run_dir} already holds a run ({held}); pass --resume to continue it, "
            "--overwrite to start over in it, or choose another --out"
        )


def clear_run(run_dir: Path) -> list[Path]:
    """Delete what an earlier run wrote into `run_dir` (`train --overwrite`); -> the files."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    gone = [run_dir / n for n in RUN_FILES if (run_dir / n).is_file()]
    gone += sorted(run_dir.glob("events.out.tfevents.*"))
    for path in gone:
        path.unlink()
    if gone:
        log.info("--overwrite: removed %d file(s) of the earlier run in %s", len(gone), run_dir)
    return gone


def write_config(cfg: Config, run_dir: Path) -> Path:
    """Write RUN/config.yaml atomically; an earlier, different one is kept as config.yaml.prev
    (a resume with --force, or with a longer schedule)."""
    path = Path(run_dir) / "config.yaml"
    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
    if path.is_file() and path.read_text() != text:
        os.replace(path, path.with_name("config.yaml.prev"))
        log.info("the run's earlier config is kept as %s.prev", path)
    atomic_write_text(path, text)
    return path
