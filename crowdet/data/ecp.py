"""EuroCity Persons (ECP): one json per image.

    {"identity": "frame", "imagewidth": W, "imageheight": H,
     "children": [{"identity": "pedestrian" | "rider" | "person-group-far-away" |
                   "rider+vehicle-group-far-away" | "bicycle" | ...,
                   "x0", "y0", "x1", "y1", "tags": ["occluded>40", "truncated>10",
                   "sitting-lying", "depiction", ...], "children": [...]}]}

Layout: `ECP/<time>/labels/<split>/<city>/<name>.json` beside
`ECP/<time>/img/<split>/<city>/<name>.png`.
Pedestrians are people; riders are ignore regions or people (`riders=`); groups of people and
depictions (posters, statues, reflections) are ignore regions; vehicles are not read. The record
image ID is the file name without extension; `occ` is the largest `occluded>N` tag as N/100.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np

from crowdet.data.boxfmt import check_xyxy, number
from crowdet.data.coco import load_json
from crowdet.data.records import ImageRecord
from crowdet.data.report import CORRUPT, DUPLICATE, EMPTY, INVALID_BOX, ReadReport
from crowdet.errors import CrowdetError, DataError

logger = logging.getLogger(__name__)

RIDER_POLICIES = ("ignore", "person")
GROUPS = ("person-group-far-away", "rider+vehicle-group-far-away")
PERSON, IGNORE, SKIP = 1, 2, 0


def classify(identity: str, tags: list, riders: str) -> int:
    """PERSON, IGNORE or SKIP (not a person: vehicles, unknown identities) for one ECP object."""
    if identity in GROUPS:
        return IGNORE
    if identity not in ("pedestrian", "rider"):
        return SKIP
    if "depiction" in tags or (identity == "rider" and riders == "ignore"):
        return IGNORE
    return PERSON


def occlusion(tags: list) -> float:
    """Largest `occluded>N` tag as N / 100 (0 when the object carries none)."""
    levels = [t.split(">", 1)[1] for t in tags if isinstance(t, str) and t.startswith("occluded>")]
    return max((float(v) / 100 for v in levels if v.isdigit()), default=0.0)


def read_ecp(
    path: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    riders: str = "ignore",
    strict: bool = False,
) -> list[ImageRecord]:
    """Read one ECP json or every `*.json` under a folder (sorted), see the module docstring."""
    return read_ecp_report(path, images_dir, riders, strict)[0]


def _json_files(path: Path) -> tuple[list[Path], Path]:
    if path.is_dir():
        return sorted(path.rglob("*.json")), path
    if path.is_file():
        return [path], path.parent
    raise DataError("ECP annotation file or folder not found; check the path", str(path))


def image_path_for(json_path: Path, root: Path, images_dir: Path | None) -> Path:
    """The .png of an ECP label file: under `images_dir` (same sub-folders), or labels/ -> img/."""
    if images_dir is not None:
        return images_dir / json_path.relative_to(root).with_suffix(".png")
    parts = list(json_path.with_suffix(".png").parts)
    if "labels" in parts:
        index = len(parts) - 1 - parts[::-1].index("labels")
        parts[index] = "img"
    return Path(*parts)


def read_ecp_report(
    path: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    riders: str = "ignore",
    strict: bool = False,
) -> tuple[list[ImageRecord], ReadReport]:
    """Like `read_ecp`, also returning the `ReadReport`."""
    if riders not in RIDER_POLICIES:
        raise CrowdetError(f"riders must be one of {RIDER_POLICIES}, got {riders!r}")
    path = Path(path)
    files, root = _json_files(path)
    images_dir = Path(images_dir) if images_dir is not None else None
    report = ReadReport(str(path))
    records, seen = [], {}
    for file in files:
        try:
            rec = _read_frame(file, riders, report, strict)
        except DataError as e:
            if strict:
                raise
            report.add(CORRUPT, e.reason, e.path, e.line)
            continue
        if rec.image_id in seen:
            msg = f"duplicate image ID {rec.image_id!r} (also {seen[rec.image_id]})"
            report.problem(DUPLICATE, msg, strict, path=str(file))
            continue
        seen[rec.image_id] = str(file)
        rec.image_path = str(image_path_for(file, root, images_dir))
        if len(rec) == 0:
            report.add(EMPTY, f"image {rec.image_id!r} has no people", path=str(file))
        records.append(rec)
    report.found = len(records)
    report.log_summary(logger)
    return records, report


def _walk(children, trail: str):
    """Yield (trail, object) for every object of a frame, depth first."""
    for i, child in enumerate(children if isinstance(children, list) else []):
        where = f"{trail}children[{i}]"
        yield where, child
        if isinstance(child, dict):
            yield from _walk(child.get("children"), where + ".")


def _read_frame(file: Path, riders: str, report: ReadReport, strict: bool) -> ImageRecord:
    frame = load_json(file)
    if not isinstance(frame, dict) or frame.get("identity") != "frame":
        raise DataError("expected an ECP frame object with 'identity': 'frame'", str(file))
    if not isinstance(frame.get("children", []), list):
        raise DataError("'children' must be a list", str(file))
    boxes, ignore, occ = [], [], []
    for where, obj in _walk(frame.get("children", []), ""):
        if not isinstance(obj, dict) or not isinstance(obj.get("identity"), str):
            report.problem(CORRUPT, f"{where}: needs a string 'identity'", strict, str(file))
            continue
        tags = obj.get("tags") if isinstance(obj.get("tags"), list) else []
        kind = classify(obj["identity"], tags, riders)
        if kind == SKIP:
            continue
        box = [obj.get(k) for k in ("x0", "y0", "x1", "y1")]
        why = check_xyxy(box, f"{obj['identity']} box [x0, y0, x1, y1]")
        if why:
            report.problem(INVALID_BOX, f"{where}: {why}", strict, str(file))
            continue
        boxes.append(box)
        ignore.append(kind == IGNORE)
        occ.append(occlusion(tags))
    return _record(file, frame, boxes, ignore, occ)


def _record(file: Path, frame: dict, boxes, ignore, occ) -> ImageRecord:
    n = len(boxes)
    w, h = frame.get("imagewidth", 0), frame.get("imageheight", 0)
    sized = number(w) and number(h) and w > 0 and h > 0
    return ImageRecord(
        image_id=file.stem,
        width=int(w) if sized else 0,
        height=int(h) if sized else 0,
        fbox=np.array(boxes, np.float32).reshape(n, 4),
        vbox=np.full((n, 4), math.nan, np.float32),
        hbox=np.full((n, 4), math.nan, np.float32),
        ignore=np.array(ignore, bool),
        head_ignore=np.zeros(n, bool),
        box_ids=np.arange(n, dtype=np.int64),
        occ=np.array(occ, np.float32),
        source=str(file),
        line=1,
    )
