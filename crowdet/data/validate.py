"""Checks of a dataset beyond parsing: every image decoded once, sizes, boxes against the image.

`check_records` adds to the reader's `ReadReport`, locating each problem by the annotation file
and line of its record (and the image path, box IDs in the message):
- missing / bad image (errors): the image cannot be read by `read_image`;
- size mismatch (error): the annotation gives a width/height the decoded image does not have;
- outside (info): people whose full box extends past the image border (kept: full boxes are
  amodal) and, separately, boxes wholly outside it;
- ignore only (info): images whose boxes are all ignore regions;
- duplicate box_id (info): a box ID given to several boxes of one image.
"""

from __future__ import annotations

import logging

import numpy as np
from tqdm import tqdm

from crowdet.data.images import read_image
from crowdet.data.records import ImageRecord
from crowdet.data.report import DUPLICATE_BOX_ID, IGNORE_ONLY, OUTSIDE, SIZE_MISMATCH, ReadReport
from crowdet.errors import DataError

logger = logging.getLogger(__name__)

MAX_IDS_LISTED = 20


def _ids(box_ids: np.ndarray, rows: np.ndarray) -> str:
    ids = [str(box_ids[i]) if box_ids[i] >= 0 else f"#{i}" for i in rows[:MAX_IDS_LISTED]]
    more = f" and {len(rows) - MAX_IDS_LISTED} more" if len(rows) > MAX_IDS_LISTED else ""
    return ", ".join(ids) + more


def outside_rows(fbox: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of (N, 4) xyxy boxes (partly outside, wholly outside) an image of width x height."""
    partly = (fbox[:, 0] < 0) | (fbox[:, 1] < 0) | (fbox[:, 2] > width) | (fbox[:, 3] > height)
    wholly = (fbox[:, 2] <= 0) | (fbox[:, 3] <= 0) | (fbox[:, 0] >= width) | (fbox[:, 1] >= height)
    return np.flatnonzero(partly & ~wholly), np.flatnonzero(wholly)


def check_boxes(rec: ImageRecord, report: ReadReport) -> None:
    """Info about boxes outside the image (needs rec.width/height) and ignore-only images."""
    where = {"path": rec.source, "line": rec.line}
    if len(rec) and rec.num_people == 0:
        report.add(IGNORE_ONLY, f"image {rec.image_id!r} has only ignore regions", **where)
    ids, counts = np.unique(rec.box_ids[rec.box_ids >= 0], return_counts=True)
    if (counts > 1).any():
        twice = ids[counts > 1].tolist()
        msg = (
            f"image {rec.image_id!r}: box_id {', '.join(map(str, twice[:MAX_IDS_LISTED]))} used "
            "by more than one box (messages naming these box IDs are ambiguous)"
        )
        report.add(DUPLICATE_BOX_ID, msg, count=len(twice), **where)
    if rec.width <= 0 or rec.height <= 0:
        return
    people = np.flatnonzero(~rec.ignore)
    partly, wholly = outside_rows(rec.fbox[people], rec.width, rec.height)
    size = f"{rec.width}x{rec.height}"
    for rows, how in ((partly, "extend past"), (wholly, "lie wholly outside")):
        if len(rows):
            msg = (
                f"image {rec.image_id!r}: {len(rows)} full box(es) {how} the {size} image "
                f"(kept; box_id {_ids(rec.box_ids, people[rows])})"
            )
            report.add(OUTSIDE, msg, count=len(rows), **where)


def check_image(rec: ImageRecord, report: ReadReport, strict: bool = False) -> bool:
    """Decode the record's image; check and fill its size. False if it cannot be read."""
    try:
        image = read_image(rec.image_path)
    except DataError as e:
        msg = f"image {rec.image_id!r}: {e.reason}: {rec.image_path}"
        report.problem(e.kind, msg, strict, rec.source, rec.line)
        return False
    height, width = image.shape[:2]
    if rec.width > 0 and (rec.width, rec.height) != (width, height):
        msg = (
            f"image {rec.image_id!r}: annotated size {rec.width}x{rec.height} but the image is "
            f"{width}x{height} (EXIF orientation applied): {rec.image_path}"
        )
        report.problem(SIZE_MISMATCH, msg, strict, rec.source, rec.line)
    rec.width, rec.height = width, height
    return True


def check_records(
    records: list[ImageRecord],
    report: ReadReport,
    decode: bool = True,
    strict: bool = False,
    progress: bool = True,
) -> int:
    """Run `check_image` (when `decode`) and `check_boxes` on every record; returns images read.

    Problems go to `report` (raised as DataError in strict mode, for error kinds).
    """
    readable = 0
    for rec in tqdm(records, desc="checking images", disable=not progress, unit="img"):
        if decode and check_image(rec, report, strict):
            readable += 1
        check_boxes(rec, report)
    return readable
