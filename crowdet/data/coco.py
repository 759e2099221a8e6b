"""COCO-style json for people: `images`, `annotations` (`bbox` xywh), `categories`.

Read: annotations of the person category (named "person" or "pedestrian", or the only category)
become rows; `iscrowd: 1` or a non-zero `ignore` attribute marks an ignore region. Optional
`vis_bbox` (visible box, as in CityPersons) and `head_bbox` fill `vbox` / `hbox`. A record's
image ID is the image's `file_name` without its extension (CrowdHuman's `ID` for files written
from odgt); `coco_image_ids` maps COCO's numeric image ids to those IDs.

Every image and annotation key the record does not model (`segmentation`, `license`, odgt's
`head_attr` written through COCO, ...) is kept in `fields` / `box_fields`. Writing:
`crowdet.data.coco_write` (`write_coco` is importable from here too).
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path, PurePosixPath

import numpy as np

from crowdet.data.boxfmt import (
    NAN4,
    check_xywh,
    number,
    numeric_array,
    paused_gc,
    valid_xywh_rows,
    xywh_to_xyxy,
)
from crowdet.data.coco_write import BBOX_KIND_KEY, records_to_coco, write_coco
from crowdet.data.fields import FieldTable
from crowdet.data.records import ImageRecord
from crowdet.data.report import (
    CORRUPT,
    DUPLICATE,
    EMPTY,
    INVALID_BOX,
    OTHER_CATEGORY,
    ReadReport,
)
from crowdet.errors import DataError

__all__ = ["coco_image_ids", "load_json", "read_coco", "read_coco_report", "records_to_coco"]
__all__ += ["write_coco"]  # the writer lives in coco_write.py

logger = logging.getLogger(__name__)

PERSON_NAMES = ("person", "pedestrian")
_PART_KEY = {"visible": "vis_bbox", "head": "head_bbox"}
_IMAGE_KEYS = frozenset({"id", "file_name", "im_name", "width", "height"})
_ANN_KEYS = frozenset(
    {"id", "image_id", "category_id", "bbox", "area", "iscrowd", "ignore", "box_id", "full_bbox"}
    | {"vis_bbox", "head_bbox", "head_ignore", "occ"}
)


def load_json(path: str | os.PathLike) -> object:
    """Parse a json file; missing or malformed files raise DataError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError("annotation file not found; check the path", str(path), kind=CORRUPT)
    try:
        with open(path, "rb") as f, paused_gc():
            return json.loads(f.read())
    except json.JSONDecodeError as e:
        raise DataError(
            f"malformed JSON ({e.msg}, column {e.colno})", str(path), e.lineno
        ) from None
    except ValueError as e:
        raise DataError(f"malformed JSON ({e})", str(path), kind=CORRUPT) from None


def read_coco(
    path: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    strict: bool = False,
    keep_fields: bool = False,
) -> list[ImageRecord]:
    """Read a COCO-style json of people into ImageRecords (see the module docstring).

    Args:
        path: the json file.
        images_dir: folder that `file_name` is relative to; default `<folder of path>/Images`.
        strict: raise `DataError` on the first problem instead of skipping and counting it.
    """
    return read_coco_report(path, images_dir, strict, keep_fields)[0]


def read_coco_report(
    path: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    strict: bool = False,
    keep_fields: bool = False,
) -> tuple[list[ImageRecord], ReadReport]:
    """Like `read_coco`, also returning the `ReadReport` of skipped and counted problems."""
    path = Path(path)
    images_dir = Path(images_dir) if images_dir is not None else path.parent / "Images"
    data = load_json(path)
    report = ReadReport(str(path))
    why = _top_level_error(data)
    if why:
        raise DataError(why, str(path), kind=CORRUPT)
    records, by_id = _read_images(data["images"], images_dir, path, report, strict, keep_fields)
    people = _person_categories(data.get("categories", []), path)
    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    kind = info.get(BBOX_KIND_KEY, "full")
    anns = data["annotations"]
    names = _category_names(data.get("categories"))
    if people is None and names:  # one category: it is people's
        people = set(names)
    if people is not None:  # other categories (car, dog, ...) are not people, not errors
        _check_categories(anns, names, people, report, strict)
        anns = [a for a in anns if not isinstance(a, dict) or a.get("category_id") in people]
    with paused_gc():
        table = FieldTable(_ANN_KEYS) if keep_fields else None
        if not _read_fast(anns, by_id, kind, table):
            _read_checked(data["annotations"], by_id, people, kind, report, strict, table)
    for rec in records:
        if len(rec) == 0:
            report.add(EMPTY, f"image {rec.image_id!r} has no boxes", line=rec.line)
    report.found = len(records)
    report.log_summary(logger)
    return records, report


def coco_image_ids(path: str | os.PathLike) -> dict[object, str]:
    """COCO image `id` -> the record image ID (`file_name` without extension) of a COCO json."""
    data = load_json(path)
    if _top_level_error(data):
        raise DataError(_top_level_error(data), str(path), kind=CORRUPT)
    ids = {}
    for im in data["images"]:
        name = im.get("file_name", im.get("im_name")) if isinstance(im, dict) else None
        if isinstance(name, str) and "id" in im:
            ids[im["id"]] = _image_id(name)
    return ids


def _top_level_error(data) -> str | None:
    if not isinstance(data, dict):
        return f"expected a JSON object with 'images' and 'annotations', got {type(data).__name__}"
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            return f"missing or invalid {key!r}: expected a list"
    return None


def _image_id(file_name: str) -> str:
    name = PurePosixPath(file_name)
    return str(name.with_suffix("")) if name.suffix else file_name


def _read_images(images, images_dir, path, report, strict, keep_fields):
    """COCO `images` -> (records in file order, {coco id: record})."""
    records, by_id, names = [], {}, set()
    for i, im in enumerate(images):
        where = f"images[{i}]"
        name = im.get("file_name", im.get("im_name")) if isinstance(im, dict) else None
        if not isinstance(im, dict) or "id" not in im or not isinstance(name, str) or not name:
            report.problem(CORRUPT, f"{where}: needs 'id' and a string 'file_name'", strict)
            continue
        key, image_id = im["id"], _image_id(name)
        if not isinstance(key, int | str) or isinstance(key, bool):
            report.problem(CORRUPT, f"{where}: 'id' must be an integer or string", strict)
            continue
        if key in by_id or image_id in names:
            report.problem(DUPLICATE, f"{where}: duplicate image id {key!r} / {image_id!r}", strict)
            continue
        w, h = im.get("width", 0), im.get("height", 0)
        sized = number(w) and number(h) and w > 0 and h > 0
        rec = ImageRecord(
            image_id=image_id,
            image_path=str(images_dir / name),
            width=int(w) if sized else 0,
            height=int(h) if sized else 0,
            source=str(path),
            line=i + 1,
        )
        if keep_fields:
            rec.fields = {k: v for k, v in im.items() if k not in _IMAGE_KEYS}
        records.append(rec)
        by_id[key] = rec
        names.add(image_id)
    return records, by_id


def _category_names(categories) -> dict:
    """COCO `categories` -> {id: name}."""
    categories = categories if isinstance(categories, list) else []
    return {c["id"]: str(c.get("name")) for c in categories if isinstance(c, dict) and "id" in c}


def _check_categories(anns: list, names: dict, people: set, report, strict: bool) -> None:
    """Report annotations whose category is not in `categories` (corrupt: skipped) and count
    those of other categories (a note)."""
    other: dict[str, int] = {}
    for i, ann in enumerate(anns):
        cat = ann.get("category_id") if isinstance(ann, dict) else None
        if not isinstance(cat, int | str) or cat in people:
            continue
        if cat in names:
            other[names[cat]] = other.get(names[cat], 0) + 1
            continue
        where = f"annotations[{i}]" + (f" (id {ann['id']!r})" if "id" in ann else "")
        report.problem(CORRUPT, f"{where}: category_id {cat!r} is not in 'categories'", strict)
    if other:
        n, listed = sum(other.values()), ", ".join(f"{k} {v}" for k, v in sorted(other.items()))
        msg = f"{n} annotation(s) of other categories not read as people ({listed})"
        report.add(OTHER_CATEGORY, msg, count=n)


def _person_categories(categories, path: Path) -> set | None:
    """Category ids of people, or None to take every annotation (no or one category)."""
    categories = categories if isinstance(categories, list) else []
    cats = [c for c in categories if isinstance(c, dict) and "id" in c]
    named = {c["id"] for c in cats if str(c.get("name", "")).lower() in PERSON_NAMES}
    if named:
        return named
    if len(cats) > 1:
        names = sorted(str(c.get("name")) for c in cats)
        msg = f"no 'person' or 'pedestrian' category among {names}"
        raise DataError(msg, str(path), kind=CORRUPT)
    return None


def _annotation_error(ann, by_id, bbox_name: str) -> str | None:
    if not isinstance(ann, dict):
        return f"expected a JSON object, got {type(ann).__name__}"
    if "image_id" not in ann:
        return "missing field 'image_id'"
    if not isinstance(ann["image_id"], int | str) or ann["image_id"] not in by_id:
        return f"image_id {ann['image_id']!r} is not in 'images'"
    for key in ("iscrowd", "ignore", "head_ignore", "occ"):
        if key in ann and not (number(ann[key]) or isinstance(ann[key], bool)):
            return f"{key!r} must be a number, got {ann[key]!r}"
    box_id = ann.get("box_id", ann.get("id", -1))
    if not isinstance(box_id, int) or isinstance(box_id, bool):
        return f"box id must be an integer, got {box_id!r}"
    if bbox_name not in ann:
        return f"missing field {bbox_name!r}"
    return check_xywh(ann[bbox_name], bbox_name)


def _read_fast(anns: list, by_id: dict, kind: str, table: FieldTable | None) -> bool:
    """Fill the records from clean annotations in one vectorised pass; False (nothing filled)
    when any annotation needs a closer look."""
    full_key = "bbox" if kind == "full" else "full_bbox"
    position = {key: i for i, key in enumerate(by_id)}
    try:
        index = np.array([position[a["image_id"]] for a in anns], np.int64)
        cols = [
            numeric_array([a[full_key] for a in anns], 2),
            numeric_array([a.get("vis_bbox", NAN4) for a in anns], 2),
            numeric_array([a.get("head_bbox", NAN4) for a in anns], 2),
            numeric_array([a.get("iscrowd", 0) for a in anns], 1),
            numeric_array([a.get("ignore", 0) for a in anns], 1),
            numeric_array([a.get("head_ignore", 0) for a in anns], 1),
            numeric_array([a.get("box_id", a.get("id", -1)) for a in anns], 1),
            numeric_array([a.get("occ", math.nan) for a in anns], 1),
        ]
        has_ignore = np.array(["ignore" in a for a in anns], bool)
    except (KeyError, TypeError, AttributeError, ValueError):
        return False
    if not anns:
        return True
    if any(c is None for c in cols) or cols[6].dtype.kind not in "iu":
        return False
    full, vis, head, crowd, ignore, head_ignore, box_ids, occ = cols
    if not (
        valid_xywh_rows(full, allow_nan=False)
        and valid_xywh_rows(vis, allow_nan=True)
        and valid_xywh_rows(head, allow_nan=True)
        and all(np.isfinite(c).all() for c in (crowd, ignore, head_ignore))
    ):
        return False
    if kind == "full":  # files from elsewhere: either flag marks an ignore region
        flags = (crowd != 0) | (ignore != 0)
    else:  # written by crowdet for visible/head: `ignore` is the row's own flag
        flags = np.where(has_ignore, ignore != 0, crowd != 0)
    fields = {
        "fbox": xywh_to_xyxy(full),
        "vbox": xywh_to_xyxy(vis),
        "hbox": xywh_to_xyxy(head),
        "ignore": flags,
        "head_ignore": head_ignore != 0,
        "box_ids": box_ids.astype(np.int64),
        "occ": occ.astype(np.float32),
    }
    order = np.argsort(index, kind="stable")
    bounds = np.cumsum(np.bincount(index, minlength=len(by_id)))[:-1]
    split = {name: np.split(value[order], bounds) for name, value in fields.items()}
    fields = [table.unknown(a) for a in anns] if table is not None else []
    ends = np.cumsum(np.bincount(index, minlength=len(by_id))).tolist()
    for i, rec in enumerate(by_id.values()):
        for name, parts in split.items():
            setattr(rec, name, parts[i])
        if fields:
            rec.box_fields = _some([fields[j] for j in order[ends[i] - len(rec) : ends[i]]])
    return True


def _read_checked(anns, by_id, people, kind, report, strict, table) -> None:
    """Annotation by annotation: each problem reported (or raised) with its index and id."""
    rows: dict[object, list[tuple]] = {key: [] for key in by_id}
    for i, ann in enumerate(anns):
        if isinstance(ann, dict) and people is not None and ann.get("category_id") not in people:
            continue
        row = _parse_annotation(i, ann, by_id, kind, report, strict)
        if row is not None:
            rows[ann["image_id"]].append((*row, table.unknown(ann) if table else {}))
    for key, rec in by_id.items():
        _fill(rec, rows[key])


def _parse_annotation(i, ann, by_id, kind, report, strict) -> tuple | None:
    """One annotation -> (fbox, vbox, hbox, ignore, head_ignore, box_id, occ) xywh, or None."""
    full_key = "bbox" if kind == "full" else "full_bbox"
    why = _annotation_error(ann, by_id, full_key)
    if why:
        kind_ = INVALID_BOX if "bbox" in why or "box id" in why else CORRUPT
        report.problem(kind_, f"{_where(i, ann, by_id)}: {why}", strict)
        return None
    parts = {"full": ann[full_key]}
    for part, key in _PART_KEY.items():
        value = ann.get(key)
        why = check_xywh(value, key) if value is not None else None
        if why:
            report.problem(INVALID_BOX, f"{_where(i, ann, by_id)}: {why}", strict)
        parts[part] = NAN4 if why or value is None else value
    if kind == "full" or "ignore" not in ann:
        ignore = bool(ann.get("iscrowd", 0)) or bool(ann.get("ignore", 0))
    else:  # written by crowdet for visible/head: iscrowd follows that kind, `ignore` is the row's
        ignore = bool(ann["ignore"])
    occ = ann.get("occ", math.nan)
    box_id = ann.get("box_id", ann.get("id", -1))
    head_ignore = bool(ann.get("head_ignore", 0))
    return parts["full"], parts["visible"], parts["head"], ignore, head_ignore, box_id, occ


def _where(i: int, ann, by_id: dict) -> str:
    """'annotations[i] (id N, image ID)' for messages."""
    where = f"annotations[{i}]"
    if isinstance(ann, dict):
        rec = by_id.get(ann.get("image_id")) if isinstance(ann.get("image_id"), int | str) else None
        details = [f"id {ann['id']!r}"] if "id" in ann else []
        details += [f"image {rec.image_id!r}"] if rec is not None else []
        where += f" ({', '.join(details)})" if details else ""
    return where


def _fill(rec: ImageRecord, rows: list[tuple]) -> None:
    if not rows:
        return
    columns = (list(c) for c in zip(*rows, strict=True))
    fbox, vbox, hbox, ignore, head_ignore, box_ids, occ, fields = columns
    rec.fbox, rec.vbox, rec.hbox = xywh_to_xyxy(fbox), xywh_to_xyxy(vbox), xywh_to_xyxy(hbox)
    rec.ignore = np.array(ignore, bool)
    rec.head_ignore = np.array(head_ignore, bool)
    rec.box_ids = np.array(box_ids, np.int64)
    rec.occ = np.array(occ, np.float32)
    rec.box_fields = _some(fields)


def _some(fields: list[dict]) -> list[dict]:
    """`fields`, or [] when no row has any."""
    return fields if any(fields) else []
