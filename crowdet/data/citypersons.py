"""CityPersons: the original `.mat` annotations and the COCO-style json of its evaluation.

`.mat` (`anno_train_aligned`, `anno_val_aligned`): one cell per image with `cityname`, `im_name`
and `bbs`, one row per object: [class, x, y, w, h, instance_id, x_vis, y_vis, w_vis, h_vis].
Classes: 0 ignore region, 1 pedestrian, 2 rider, 3 sitting person, 4 other person, 5 group.
Rows of `person_classes` (default pedestrians only, as the CityPersons benchmark) are people;
every other class is an ignore region. Images: `<images_dir>/<cityname>/<im_name>`.

json: COCO style (`bbox`, `vis_bbox`, `height`, `vis_ratio`, `ignore`), read by `read_coco`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import scipy.io

from crowdet.data.boxfmt import xywh_to_xyxy
from crowdet.data.coco import read_coco_report
from crowdet.data.records import ImageRecord
from crowdet.data.report import CORRUPT, DUPLICATE, EMPTY, INVALID_BOX, ReadReport
from crowdet.errors import DataError

logger = logging.getLogger(__name__)

CLASSES = {0: "ignore", 1: "pedestrian", 2: "rider", 3: "sitting", 4: "other", 5: "group"}


def read_citypersons(
    path: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    person_classes: tuple[int, ...] = (1,),
    strict: bool = False,
) -> list[ImageRecord]:
    """Read CityPersons annotations (`.mat` or COCO-style `.json`), see the module docstring."""
    return read_citypersons_report(path, images_dir, person_classes, strict)[0]


def read_citypersons_report(
    path: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    person_classes: tuple[int, ...] = (1,),
    strict: bool = False,
) -> tuple[list[ImageRecord], ReadReport]:
    """Like `read_citypersons`, also returning the `ReadReport`."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return read_coco_report(path, images_dir, strict)
    images_dir = Path(images_dir) if images_dir is not None else path.parent
    cells = _load_cells(path)
    report = ReadReport(str(path))
    records, seen = [], set()
    for index, cell in enumerate(cells, 1):
        rec = _read_cell(cell, index, images_dir, person_classes, report, strict)
        if rec is None:
            continue
        if rec.image_id in seen:
            msg = f"image {index}: duplicate {rec.image_id!r}"
            report.problem(DUPLICATE, msg, strict, line=index)
            continue
        seen.add(rec.image_id)
        rec.source = str(path)
        if len(rec) == 0:
            report.add(EMPTY, f"image {index} ({rec.image_id!r}) has no boxes", line=index)
        records.append(rec)
    report.found = len(records)
    report.log_summary(logger)
    return records, report


def _load_cells(path: Path) -> list:
    if not path.is_file():
        raise DataError("CityPersons annotation file not found; check the path", str(path))
    try:
        mat = scipy.io.loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except Exception as e:  # scipy raises many exception types on a file it cannot parse
        raise DataError(f"not a readable .mat file ({e})", str(path), kind=CORRUPT) from None
    names = [k for k in mat if not k.startswith("__")]
    if len(names) != 1:
        raise DataError(f"expected one annotation variable, found {names}", str(path))
    return list(np.atleast_1d(mat[names[0]]))


def _field(cell, *names):
    for name in names:
        if hasattr(cell, name):
            return getattr(cell, name)
    return None


def _read_cell(cell, index, images_dir, person_classes, report, strict) -> ImageRecord | None:
    city, name = _field(cell, "cityname", "city_name"), _field(cell, "im_name")
    bbs = _field(cell, "bbs")
    if not isinstance(name, str) or not isinstance(city, str) or bbs is None:
        msg = f"image {index}: needs 'cityname', 'im_name' and 'bbs'"
        report.problem(CORRUPT, msg, strict, line=index)
        return None
    bbs = np.asarray(bbs, np.float64)
    if bbs.size == 0 or bbs.shape == (10,):  # squeeze_me flattens one-row and empty tables
        bbs = bbs.reshape(-1, 10)
    if bbs.ndim != 2 or bbs.shape[1] != 10:
        msg = f"image {index} ({name}): bbs must have 10 columns, got shape {bbs.shape}"
        report.problem(CORRUPT, msg, strict, line=index)
        return None
    bad = ~(np.isfinite(bbs).all(1) & (bbs[:, 3] > 0) & (bbs[:, 4] > 0))
    for row in np.flatnonzero(bad):
        msg = (
            f"image {index} ({name}) row {row}: box has zero or negative size: {bbs[row].tolist()}"
        )
        report.problem(INVALID_BOX, msg, strict, line=index)
    bbs = bbs[~bad]
    visible = bbs[:, 6:10].copy()
    visible[~((visible[:, 2] > 0) & (visible[:, 3] > 0))] = np.nan
    n = len(bbs)
    return ImageRecord(
        image_id=Path(name).stem,
        image_path=str(images_dir / city / name),
        fbox=xywh_to_xyxy(bbs[:, 1:5]),
        vbox=xywh_to_xyxy(visible),
        hbox=np.full((n, 4), np.nan, np.float32),
        ignore=~np.isin(bbs[:, 0].astype(np.int64), list(person_classes)),
        head_ignore=np.zeros(n, bool),
        box_ids=bbs[:, 5].astype(np.int64),
        occ=np.full(n, np.nan, np.float32),
        line=index,
    )
