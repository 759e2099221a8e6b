"""Counting data problems while reading: skip and count by default, raise in strict mode.

Every reader fills a `ReadReport`. A problem of an error kind (corrupt record, invalid box,
duplicate ID, missing or unreadable image) either raises `DataError` (strict) or is recorded and
the record or box is skipped. Info kinds (empty images, boxes outside the image) are recorded
and never raise. At the end `log_summary` writes ONE warning per kind, naming the first file:line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from crowdet.errors import DataError

logger = logging.getLogger(__name__)

# Error kinds: the record / box / image is skipped (or DataError in strict mode).
CORRUPT = "corrupt"  # malformed line, missing or wrongly typed fields
INVALID_BOX = "invalid box"  # box not 4 numbers, zero or negative size, wrong types
DUPLICATE = "duplicate"  # an image ID seen before in the same file
MISSING = "missing"  # image named by the annotations but absent on disk
BAD_IMAGE = "bad image"  # zero-byte, truncated or non-image file
SIZE_MISMATCH = "size mismatch"  # annotated width/height differ from the decoded image
ERROR_KINDS = (CORRUPT, INVALID_BOX, DUPLICATE, MISSING, BAD_IMAGE, SIZE_MISMATCH)

# Info kinds: reported, never skipped, never an error.
EMPTY = "empty"  # image with no annotated box at all
IGNORE_ONLY = "ignore only"  # image whose boxes are all ignore regions
OUTSIDE = "outside"  # box partly or wholly outside the image (kept: full boxes are amodal)
UNKNOWN_TAG = "unknown tag"  # odgt tag other than person / mask: read as an ignore region
DUPLICATE_BOX_ID = "duplicate box_id"  # box IDs used twice in one image (messages ambiguous)
OTHER_CATEGORY = "other category"  # COCO annotations of a category that is not people
INFO_KINDS = (EMPTY, IGNORE_ONLY, OUTSIDE, UNKNOWN_TAG, DUPLICATE_BOX_ID, OTHER_CATEGORY)


@dataclass
class ReadReport:
    """Counts and locations of the problems met while reading one annotation file.

    Attributes:
        path: the annotation file.
        found: number of records (images) read and kept.
        counts: problem kind -> number of occurrences.
        problems: every problem as a `DataError` (path, line, kind, reason), in file order.
    """

    path: str = ""
    found: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[DataError] = field(default_factory=list)

    def add(
        self, kind: str, message: str, path: str = "", line: int | None = None, count: int = 1
    ) -> DataError:
        """Record one problem (standing for `count` occurrences) and return it, not raised."""
        err = DataError(message, path or self.path, line, kind=kind)
        self.counts[kind] = self.counts.get(kind, 0) + count
        self.problems.append(err)
        return err

    def problem(
        self, kind: str, message: str, strict: bool, path: str = "", line: int | None = None
    ) -> None:
        """Record an error-kind problem; raise it as DataError in strict mode."""
        err = self.add(kind, message, path, line)
        if strict and kind in ERROR_KINDS:
            raise err

    def count(self, kind: str) -> int:
        return self.counts.get(kind, 0)

    @property
    def num_errors(self) -> int:
        return sum(self.counts.get(k, 0) for k in ERROR_KINDS)

    def first(self, kind: str) -> DataError | None:
        return next((p for p in self.problems if p.kind == kind), None)

    def summary(self) -> str:
        """One line: 'found N, corrupt N, missing N, empty N, invalid boxes N, ...'."""
        parts = [f"found {self.found}"]
        for kind in (CORRUPT, MISSING, EMPTY, INVALID_BOX):
            label = "invalid boxes" if kind == INVALID_BOX else kind
            parts.append(f"{label} {self.count(kind)}")
        for kind in (DUPLICATE, BAD_IMAGE, SIZE_MISMATCH, IGNORE_ONLY, OUTSIDE):
            if self.count(kind):
                parts.append(f"{kind} {self.count(kind)}")
        return ", ".join(parts)

    def merge(self, other: ReadReport) -> None:
        """Add another report's counts and problems to this one (`found` too)."""
        self.found += other.found
        for kind, n in other.counts.items():
            self.counts[kind] = self.counts.get(kind, 0) + n
        self.problems.extend(other.problems)

    def log_summary(self, log: logging.Logger | None = None) -> None:
        """Log one warning per error kind (with the first occurrence), and info kinds at INFO."""
        log = log or logger
        for kind in ERROR_KINDS + INFO_KINDS:
            n = self.count(kind)
            if not n:
                continue
            first = self.first(kind)
            if kind in ERROR_KINDS:
                log.warning("%s: skipped %d %s (first: %s)", self.path, n, kind, first)
            else:
                log.info("%s: %d %s (first: %s)", self.path, n, kind, first)
