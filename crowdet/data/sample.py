"""One image and every annotation of its record, on its way from the decoder through the transforms.

A `Sample` carries every box kind of its record (full, visible, head), row-aligned: row i of each
kind is the same person or ignore region, NaN where the record has no box of that kind. Boxes are
float32 xyxy in the pixels of the sample's current image, so a transform that moves the image moves
every kind alike (`Sample.map_boxes`). The box kind a run trains on is chosen at the end of the
pipeline (`choose_targets`); `Sample.targets()` then gives that kind's boxes and ignore flags.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from crowdet.data.records import BOX_KINDS, ImageRecord, ignore_flags
from crowdet.data.transforms import clip_boxes


def _no_boxes() -> dict[str, np.ndarray]:
    return {kind: np.zeros((0, 4), np.float32) for kind in BOX_KINDS}


@dataclass
class Sample:
    """image: HxWx3 uint8 BGR, None when it could not be read (then `problem` and `reason` say
    why); boxes: {"full" | "visible" | "head": (N, 4) float32 xyxy in this image's pixels};
    ignore: (N,) bool ignore regions; head_ignore: (N,) bool heads to ignore (`head_attr.ignore`);
    scale: this image's pixels per original-image pixel; orig_size: (height, width) of the
    original image; kind: the box kind `targets()` answers with."""

    image: np.ndarray | None
    image_id: str
    boxes: dict[str, np.ndarray]
    ignore: np.ndarray
    head_ignore: np.ndarray
    scale: float = 1.0
    orig_size: tuple[int, int] = (0, 0)
    kind: str = "full"
    problem: str = ""  # kind of data problem when the image could not be read
    reason: str = ""  # the problem's message (names the file)

    @classmethod
    def from_record(cls, image: np.ndarray, rec: ImageRecord) -> Sample:
        """The decoded image of `rec` with all of its boxes, in original-image pixels; a box kind
        or head_ignore that the record leaves empty (the dataclass default) is absent: NaN rows,
        no head ignored."""
        n = len(rec)
        boxes = {}
        for kind in BOX_KINDS:
            b = rec.boxes(kind)
            boxes[kind] = (
                b.astype(np.float32) if len(b) == n else np.full((n, 4), np.nan, np.float32)
            )
        heads = rec.head_ignore.astype(bool) if len(rec.head_ignore) == n else np.zeros(n, bool)
        ignore = rec.ignore.astype(bool)
        return cls(image, rec.image_id, boxes, ignore, heads, orig_size=image.shape[:2])

    @classmethod
    def from_image(cls, image: np.ndarray, image_id: str = "") -> Sample:
        """An image without annotations (inference)."""
        empty = np.zeros(0, bool)
        return cls(image, image_id, _no_boxes(), empty, empty, orig_size=image.shape[:2])

    @classmethod
    def unreadable(cls, image_id: str, problem: str, reason: str) -> Sample:
        """The placeholder of an image that could not be read: dropped and counted by collate."""
        empty = np.zeros(0, bool)
        return cls(None, image_id, _no_boxes(), empty, empty, problem=problem, reason=reason)

    def __len__(self) -> int:
        return len(self.ignore)

    def map_boxes(self, fn: Callable[[np.ndarray], np.ndarray]) -> dict[str, np.ndarray]:
        """{kind: fn(boxes)} for every box kind: how a transform moves all of them alike."""
        return {kind: fn(b) for kind, b in self.boxes.items()}

    def evolve(self, **changes) -> Sample:
        """A shallow copy with `changes` (what dataclasses.replace does, without its cost per
        call: a strong augmentation makes dozens of copies per sample)."""
        out = copy.copy(self)
        out.__dict__.update(changes)
        return out

    def take(self, keep: np.ndarray) -> Sample:
        """The sample with only the rows where `keep` (N,) is True, in every kind."""
        boxes = {kind: b[keep] for kind, b in self.boxes.items()}
        return self.evolve(
            boxes=boxes, ignore=self.ignore[keep], head_ignore=self.head_ignore[keep]
        )

    def targets(self) -> tuple[np.ndarray, np.ndarray]:
        """(N, 4) boxes and (N,) ignore flags of the chosen kind (`choose_targets`)."""
        return self.boxes[self.kind], ignore_flags(self.ignore, self.head_ignore, self.kind)


def choose_targets(sample: Sample, kind: str, min_box_size: float | None = None) -> Sample:
    """The last step of the pipeline: the rows that have a `kind` box, `kind` made the targets.

    min_box_size None (evaluation): boxes stay as they are (full boxes are amodal). A number
    (training): every kind is clipped to the image and rows whose `kind` box is narrower or lower
    than min_box_size are dropped. The other kinds stay row-aligned with the chosen one."""
    keep = np.isfinite(sample.boxes[kind]).all(1)
    if min_box_size is not None:
        height, width = sample.image.shape[:2]
        sample = replace(sample, boxes=sample.map_boxes(lambda b: clip_boxes(b, height, width)))
        chosen = sample.boxes[kind]
        keep &= (chosen[:, 2:] - chosen[:, :2] >= min_box_size).all(1)
    return replace(sample.take(keep), kind=kind)
