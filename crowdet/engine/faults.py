"""Faults met while training, kept out of the model and counted for the user.

- `check_images`: at start-up, every image of a set is looked up on disk and the first ones are
  decoded until one reads; a set with no readable image at all is an error then, not a crash in
  the head after the first empty batch.
- `DataFaults`: the images skipped while training, by problem kind and counted once per image
  (draws apart); one warning per kind names the first image's ID and file, and `summary` gives
  the promised "found N, corrupt N, missing N, empty N, invalid boxes N" line.
- `snapshot_buffers` / `restore_buffers`: a skipped step must leave no trace in the model, and
  its forward pass has already updated the BatchNorm running statistics.
- `non_finite_entry`: the first non-finite tensor of a state dict (no checkpoint is written
  from such a state).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from crowdet.data.images import read_image
from crowdet.data.records import ImageRecord
from crowdet.data.report import BAD_IMAGE, MISSING, ReadReport
from crowdet.errors import CrowdetError, DataError

log = logging.getLogger("crowdet.train")


def check_images(
    records: list[ImageRecord], ann: str | os.PathLike, images_dir: str | os.PathLike,
    strict: bool = False,
) -> dict[str, str]:  # fmt: skip
    """Look every image up on disk (a stat each) and decode images in order until one reads.

    Returns:
        {image_id: message} of the images missing on disk (one warning for them all).
    Raises:
        CrowdetError: no image of the set is readable (`N of N images of ANN are missing or
            unreadable under DIR`); DataError: in strict mode, the first missing image.
    """
    missing = {}
    for rec in records:
        if not os.path.isfile(rec.image_path):
            missing[rec.image_id] = f"{rec.image_path}: image file not found"
            if strict:
                raise DataError("image file not found", rec.image_path, kind=MISSING)
    first_bad = None
    for rec in records:
        if rec.image_id in missing:
            continue
        try:
            read_image(rec.image_path)
            break
        except DataError as e:
            first_bad = first_bad or e
    else:
        n = len(records)
        first = first_bad or next(iter(missing.values()), "")
        raise CrowdetError(
            f"{n} of {n} images of {ann} are missing or unreadable under {images_dir} "
            f"(first: {first}); check data.root and data.images"
        )
    if missing:
        image_id, why = next(iter(missing.items()))
        log.warning(
            "%s: %d of %d images are missing on disk; they are skipped when drawn "
            "(first: image %r, %s)", ann, len(missing), len(records), image_id, why,
        )  # fmt: skip
    return missing


class DataFaults:
    """The images a training run skipped, by problem kind, each image counted once."""

    def __init__(self, report: ReadReport | None = None):
        self.report = report or ReadReport()  # what reading the annotation file found
        self.images: dict[str, dict[str, str]] = {}  # kind -> {image ID: message}
        self.draws: dict[str, int] = {}  # kind -> samples dropped from batches

    def add_missing(self, missing: dict[str, str]) -> None:
        """Images found missing at start-up (already warned about)."""
        if missing:
            self.images.setdefault(MISSING, {}).update(missing)

    def add(self, skipped_images: list[tuple[str, str, str]]) -> None:
        """The (image ID, kind, message) of samples dropped from a batch; the first image of a
        kind is named in a warning, later ones are counted."""
        for image_id, kind, message in skipped_images:
            self.draws[kind] = self.draws.get(kind, 0) + 1
            seen = self.images.setdefault(kind, {})
            if not seen:  # missing images found at start-up were named then
                log.warning("skipping image %r while training (%s): %s", image_id, kind, message)
            seen.setdefault(image_id, message)

    def count(self, kind: str) -> int:
        return len(self.images.get(kind, {}))

    def summary(self) -> str:
        """'found N, corrupt N, missing N, empty N, invalid boxes N[, bad image N, ...]': the
        annotation file's problems, and the distinct images skipped for being unreadable."""
        report = ReadReport(self.report.path, self.report.found, dict(self.report.counts))
        for kind in (MISSING, BAD_IMAGE):
            report.counts[kind] = report.count(kind) + self.count(kind)
        return report.summary()

    def state_dict(self) -> dict:
        return {"images": {k: dict(v) for k, v in self.images.items()}, "draws": dict(self.draws)}

    def load_state_dict(self, state: dict) -> None:
        self.images = {k: dict(v) for k, v in state.get("images", {}).items()}
        self.draws = dict(state.get("draws", {}))


def snapshot_buffers(model: torch.nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(buffer, copy) of every buffer: BatchNorm running statistics and num_batches_tracked."""
    return [(b, b.detach().clone()) for b in model.buffers()]


@torch.no_grad()
def restore_buffers(snapshot: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    for buffer, saved in snapshot:
        buffer.copy_(saved)


def non_finite_entry(state: dict, prefix: str = "") -> str | None:
    """Dotted name of the first floating-point tensor in `state` (nested dicts) holding NaN or
    inf, or None."""
    for key, value in state.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            found = non_finite_entry(value, name + ".")
            if found:
                return found
        elif torch.is_tensor(value) and value.is_floating_point():
            if not bool(torch.isfinite(value).all()):
                return name
    return None


def refuse_non_finite(state: dict, path: Path) -> None:
    """CrowdetError when the model or EMA weights or buffers of `state` are not finite."""
    bad = non_finite_entry({k: state[k] for k in ("model", "ema") if k in state})
    if bad:
        raise CrowdetError(
            f"not writing {path}: {bad} holds NaN or inf (the training diverged); the last "
            "checkpoint written is kept: lower train.lr or set train.clip_grad, then resume"
        )


def log_end_counts(faults: DataFaults, skipped_steps: dict[str, int]) -> None:
    """The end-of-training counts: the training images (each counted once), skipped steps."""
    draws = sum(faults.draws.values())
    more = f" ({draws} draws of them skipped)" if draws else ""
    level = logging.WARNING if draws or faults.report.num_errors else logging.INFO
    log.log(level, "training images: %s%s", faults.summary(), more)
    if skipped_steps:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(skipped_steps.items()))
        log.warning("training skipped steps: %s", counts)
