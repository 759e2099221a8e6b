"""Torch dataset over ImageRecords: `SampleSource.load(index)` decodes, the transforms augment, the
run's box kind is chosen last, and `collate` pads a batch.

A sample whose image cannot be read is not a crash and not a grey image: it is dropped from its
batch and counted under its problem kind (`Batch.skipped`), its ID, kind and reason listed in
`Batch.skipped_images`; with `strict=True` it is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from crowdet.data.cache import ImageCache
from crowdet.data.images import read_image
from crowdet.data.pipeline import Transform, run_transforms
from crowdet.data.records import ImageRecord
from crowdet.data.sample import Sample, choose_targets
from crowdet.errors import DataError

log = logging.getLogger(__name__)


class SampleSource:
    """The records of a set and their decoder: `load(index)` -> the record's `Sample` in
    original-image pixels, not augmented. An unreadable image gives a Sample with no image and
    its problem (strict: the DataError is raised)."""

    def __init__(
        self, records: list[ImageRecord], cache: ImageCache | None = None, strict: bool = False
    ):
        """cache: keeps decoded images between epochs (see data/cache.py)."""
        self.records, self.cache, self.strict = records, cache, strict

    def __len__(self) -> int:
        return len(self.records)

    def load(self, index: int) -> Sample:
        rec = self.records[index]
        try:
            if self.cache is None:
                image = read_image(rec.image_path)
            else:
                image = self.cache.read(index, rec.image_path)
        except DataError as e:
            if self.strict:
                raise
            return Sample.unreadable(rec.image_id, e.kind or "corrupt", str(e))
        return Sample.from_record(image, rec)


class CrowdDataset(torch.utils.data.Dataset):
    """`source.load(index)`, then `transforms` in order, then the targets of one box kind
    ("full", "visible", "head"; `choose_targets`)."""

    def __init__(
        self,
        source: SampleSource,
        transforms: Sequence[Transform],
        box_kind: str = "full",
        min_box_size: float | None = None,
        seed: int = 0,
    ):
        """min_box_size: None keeps the targets as they are (evaluation: amodal full boxes); a
        number clips them to the image and drops the smaller ones (training)."""
        self.source, self.transforms = source, list(transforms)
        self.box_kind, self.min_box_size, self.seed = box_kind, min_box_size, seed
        self.epoch, self.strong = 0, True
        check_box_kind(source.records, box_kind)

    def __len__(self) -> int:
        return len(self.source)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_strong(self, on: bool) -> None:
        """Switch the strong transforms (those with `strong = True`) on or off."""
        self.strong = on

    def active_transforms(self) -> list[Transform]:
        if self.strong:
            return self.transforms
        return [t for t in self.transforms if not getattr(t, "strong", False)]

    def rng(self, index: int) -> np.random.Generator:
        """Item `index`'s generator: (seed, epoch, index) only, so resumable and worker-proof."""
        return np.random.default_rng((self.seed, self.epoch, index))

    def __getitem__(self, index: int) -> Sample:
        sample = self.source.load(index)
        sample = run_transforms(self.active_transforms(), sample, self.rng(index))
        if sample.image is None:
            return sample
        return choose_targets(sample, self.box_kind, self.min_box_size)


_FILE_NAMES = {"full": "fbox", "visible": "vbox", "head": "hbox"}


def check_box_kind(records: list[ImageRecord], box_kind: str) -> None:
    """Warn when people lack a box of `box_kind` (they are left out); DataError when none has
    one (training would see no target at all)."""
    people = lacking = 0
    for rec in records:
        person = ~rec.ignore
        people += int(person.sum())
        lacking += int((person & ~np.isfinite(rec.boxes(box_kind)).all(1)).sum())
    if not lacking:
        return
    name = _FILE_NAMES[box_kind]
    source = next((r.source for r in records if r.source), "")
    if lacking == people:
        raise DataError(
            f"none of the {people} people has a {box_kind} box ({name}); choose another "
            f"data.box, or annotations with {name}",
            source,
        )
    log.warning(
        "%s: %d of %d people have no %s box (%s); they are left out of the %s targets",
        source, lacking, people, box_kind, name, box_kind,
    )  # fmt: skip
