"""The in-memory annotation record every reader produces and every consumer reads.

One `ImageRecord` per image. Boxes are float32 xyxy in original-image pixels, shape (N, 4), one
row per annotated object (people and ignore regions alike, in file order). A row whose box of some
kind is absent from the source (a COCO set without visible boxes, an ignore region without a head)
holds NaN for that kind; consumers keep rows with `np.isfinite(box).all(1)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

BOX_KINDS = ("full", "visible", "head")


def _empty_boxes() -> np.ndarray:
    return np.zeros((0, 4), np.float32)


@dataclass
class ImageRecord:
    """Annotations of one image.

    Attributes:
        image_id: the dataset's image ID (CrowdHuman `ID`), unique within a set.
        image_path: path of the image file (may not exist; readers do not touch images).
        width, height: image size in pixels, 0 when not known yet.
        fbox: (N, 4) full (amodal) body boxes, may extend past the image border.
        vbox: (N, 4) visible-part boxes.
        hbox: (N, 4) head boxes.
        ignore: (N,) bool, True for ignore regions (CrowdHuman `tag: mask` or `extra.ignore: 1`).
        head_ignore: (N,) bool, True where the head box is to be ignored (`head_attr.ignore`).
        box_ids: (N,) int64 source box IDs, -1 where the source has none.
        occ: (N,) float32 occlusion as given by the source (CrowdHuman `extra.occ`), NaN if absent.
        source: annotation file the record came from; line: 1-based line (or record index).
        fields: fields of the source record that no attribute holds (odgt top-level keys, COCO
            `images` entry keys), written back by the writers.
        box_fields: per row, the box's fields that no attribute holds, in the source nesting
            (`{"head_attr": {"occ": 0, "unsure": 0}}`); empty list when no row has any.
            Dicts may be shared between rows: read-only (see `crowdet.data.fields`).
    """

    image_id: str
    image_path: str = ""
    width: int = 0
    height: int = 0
    fbox: np.ndarray = field(default_factory=_empty_boxes)
    vbox: np.ndarray = field(default_factory=_empty_boxes)
    hbox: np.ndarray = field(default_factory=_empty_boxes)
    ignore: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    head_ignore: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    box_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    occ: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    source: str = ""
    line: int = 0
    fields: dict = field(default_factory=dict)
    box_fields: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.fbox)

    def boxes(self, kind: str = "full") -> np.ndarray:
        """(N, 4) xyxy boxes of one kind: "full", "visible" or "head"."""
        if kind == "full":
            return self.fbox
        if kind == "visible":
            return self.vbox
        if kind == "head":
            return self.hbox
        raise ValueError(f"unknown box kind {kind!r}; expected one of {BOX_KINDS}")

    def ignore_for(self, kind: str = "full") -> np.ndarray:
        """(N,) ignore flags for one box kind (head boxes also honour `head_ignore`)."""
        return ignore_flags(self.ignore, self.head_ignore, kind)

    def fields_of(self, row: int) -> dict:
        """The source fields of one row that no attribute holds (empty dict when none)."""
        return self.box_fields[row] if self.box_fields else {}

    @property
    def num_people(self) -> int:
        return int((~self.ignore).sum())


def ignore_flags(ignore: np.ndarray, head_ignore: np.ndarray, kind: str) -> np.ndarray:
    """(N,) ignore flags for one box kind from the (N,) ignore regions and (N,) ignored heads."""
    return ignore | head_ignore if kind == "head" else ignore
