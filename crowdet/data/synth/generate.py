"""Writing a synthetic dataset in the CrowdHuman layout.

    OUT/Images/<ID>.jpg          synth_train_000001.jpg, ..., synth_val_000001.jpg, ...
    OUT/annotation_train.odgt    one JSON object per image: {"ID", "gtboxes": [...]}
    OUT/annotation_val.odgt
    OUT/synth.json               generator settings and summary statistics
    OUT/.crowdet-synth           written first: the folder is the generator's

`OUT` must be new, empty, or the generator's (synth.json or .crowdet-synth there): a folder
holding anything else (someone's dataset) is refused unless `force`.

Order of writing: old annotation files are removed first, then the images, then the annotation
files (atomically), then synth.json. An interrupted run therefore never leaves an annotation file
that names a missing image, and `dataset_exists` is True only after a complete run.

Images are rendered by a pool of "spawn" processes; as with any multiprocessing code, a script
that calls `generate_dataset` with more than one worker needs the `if __name__ == "__main__":`
guard.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from crowdet.data.atomic import atomic_open, atomic_write_text
from crowdet.data.odgt import record_to_json
from crowdet.data.records import ImageRecord
from crowdet.data.synth import worker
from crowdet.data.synth.presets import PRESETS, SynthPreset, resolve_config
from crowdet.data.synth.stats import summarize
from crowdet.errors import CrowdetError

logger = logging.getLogger(__name__)

SPLIT_FILES = {"train": "annotation_train.odgt", "val": "annotation_val.odgt"}
INFO_FILE = "synth.json"
MARKER = ".crowdet-synth"  # written first: the folder is the generator's
FORMAT_VERSION = 1


def dataset_exists(out: str | os.PathLike) -> bool:
    """True when `out` holds a complete synthetic dataset (written to the end)."""
    out = Path(out)
    files = [out / INFO_FILE, *(out / f for f in SPLIT_FILES.values())]
    return (out / "Images").is_dir() and all(f.is_file() for f in files)


def _check_args(out: Path, num_train: int, num_val: int, workers: int | None) -> None:
    for name, value in (("num_train", num_train), ("num_val", num_val)):
        if not isinstance(value, int | np.integer) or value < 0:
            raise CrowdetError(f"{name} must be a non-negative integer, got {value!r}")
    if workers is not None and workers < 1:
        raise CrowdetError(f"workers must be at least 1, got {workers}")
    if out.exists() and not out.is_dir():
        raise CrowdetError(f"{out} exists and is not a folder; choose another output folder")


def _check_ours(out: Path) -> None:
    """CrowdetError unless `out` is missing, empty or written by this generator."""
    entries = (
        sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir()) if out.exists() else []
    )
    if not entries or INFO_FILE in entries or MARKER in entries:
        return
    shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
    raise CrowdetError(
        f"{out} is not empty ({shown}) and was not written by the synthetic generator; choose a "
        "new or empty folder, or pass --force to write into it (its annotation_*.odgt would be "
        "replaced)"
    )


def _num_workers(workers: int | None, total: int) -> int:
    if workers is not None:
        return max(1, min(int(workers), max(total, 1)))
    return max(1, min(os.cpu_count() or 1, total // 64))


def _render_all(cfg, images_dir, seed, jobs, workers, progress) -> list:
    """(record, visible, head_occ) per job, in job order."""
    bar = tqdm(total=len(jobs), desc="synth", unit="img", disable=None if progress else True)
    results = []
    try:
        if workers == 1:
            for split, index in jobs:
                results.append(worker.make_image(cfg, images_dir, seed, split, index))
                bar.update()
            return results
        chunk = max(1, min(32, len(jobs) // (workers * 8)))
        ctx = mp.get_context("spawn")  # no fork of a parent that may hold torch / cv2 threads
        init = (cfg, images_dir, seed)
        with ctx.Pool(workers, initializer=worker.init_worker, initargs=init) as pool:
            for res in pool.imap(worker.work, jobs, chunksize=chunk):
                results.append(res)
                bar.update()
        return results
    finally:
        bar.close()


def write_split(path: Path, records: list[ImageRecord], head_occ: list[np.ndarray]) -> None:
    """Write one odgt file atomically; persons carry head_attr {"ignore", "occ", "unsure"}."""
    with atomic_open(path, "w") as f:
        for rec, hocc in zip(records, head_occ, strict=True):
            obj = record_to_json(rec)
            for g, occ in zip(obj["gtboxes"], hocc.tolist()):  # people come first
                g["head_attr"] = {
                    "ignore": g["head_attr"].get("ignore", 0),
                    "occ": int(occ),
                    "unsure": 0,
                }
            f.write(json.dumps(obj))
            f.write("\n")


def _preset_name(preset: str | SynthPreset) -> str:
    if isinstance(preset, str):
        return preset
    return next((k for k, v in PRESETS.items() if v == preset), "custom")


def generate_dataset(
    out: str | os.PathLike,
    num_train: int,
    num_val: int,
    preset: str | SynthPreset = "demo",
    size: tuple[int, int] | None = None,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    force: bool = False,
) -> dict:
    """Write a synthetic crowd dataset to `out` and return its summary statistics.

    Args:
        out: output folder (created).
        num_train, num_val: number of images per split.
        preset: a name in PRESETS or a SynthPreset.
        size: (width, height) overriding the preset's image size.
        seed: the same seed gives byte-identical files, whatever the number of workers.
        workers: processes rendering images; default: the CPU count, fewer for small sets.
        progress: show a progress bar (when stderr is a terminal).
        force: write into a non-empty folder that the generator did not write.

    Returns:
        summary dict (see `stats.summarize`) with "splits": {split: number of images}.
    """
    out = Path(out)
    _check_args(out, num_train, num_val, workers)
    if not force:
        _check_ours(out)
    cfg = resolve_config(preset, size)
    images_dir = out / "Images"
    images_dir.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by crowdet's synthetic generator\n")
    for name in (INFO_FILE, *SPLIT_FILES.values()):
        (out / name).unlink(missing_ok=True)
    counts = {"train": int(num_train), "val": int(num_val)}
    jobs = [(split, i) for split, n in counts.items() for i in range(1, n + 1)]
    nw = _num_workers(workers, len(jobs))
    logger.info("writing %d synthetic images to %s with %d process(es)", len(jobs), out, nw)
    results = _render_all(cfg, str(images_dir), seed, jobs, nw, progress)
    start = 0
    for split, n in counts.items():
        part = results[start : start + n]
        start += n
        write_split(out / SPLIT_FILES[split], [r[0] for r in part], [r[2] for r in part])
    summary = summarize([r[0] for r in results], [r[1] for r in results])
    summary["splits"] = counts
    info = {
        "format_version": FORMAT_VERSION,
        "preset": _preset_name(preset),
        "seed": int(seed),
        "config": cfg.as_dict(),
        "summary": summary,
    }
    atomic_write_text(out / INFO_FILE, json.dumps(info, indent=2) + "\n")
    return summary
