"""CrowdHuman `.odgt` annotations: one JSON object per line.

    {"ID": str, "gtboxes": [{"tag": "person" | "mask" | ..., "fbox": [x, y, w, h],
      "vbox": [...], "hbox": [...], "extra": {"box_id", "occ", "ignore"},
      "head_attr": {"ignore", "occ", "unsure"}}, ...]}

A box is an ignore region when `tag != "person"` or `extra.ignore` is non-zero. Boxes become
float32 xyxy at this edge. Fields that no record attribute holds (`head_attr.occ`, `unsure`, a tag
other than person/mask, keys of other tools) are kept in `fields` / `box_fields` and written back.
Clean records take a vectorised path (one numpy array per box kind per record); a record that
fails any check is re-read box by box to name the exact problem.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import numpy as np

from crowdet.data.atomic import atomic_open
from crowdet.data.boxfmt import (
    NAN4,
    check_xywh,
    number,
    numeric_array,
    paused_gc,
    valid_xywh_rows,
    xywh_lists_per_record,
    xywh_to_xyxy,
    xyxy_to_xywh_lists,
)
from crowdet.data.fields import FieldTable, merge_fields
from crowdet.data.records import ImageRecord
from crowdet.data.report import CORRUPT, DUPLICATE, EMPTY, INVALID_BOX, UNKNOWN_TAG, ReadReport
from crowdet.errors import DataError

logger = logging.getLogger(__name__)

_EMPTY: dict = {}
_CHUNK = 512  # records parsed together in one vectorised pass
_TAGS = frozenset({"person", "mask"})
_RECORD_KEYS = frozenset({"ID", "gtboxes", "width", "height"})
_BOX_KEYS = frozenset({"tag", "fbox", "vbox", "hbox", "extra", "head_attr"})
_NESTED_KEYS = {"extra": frozenset({"box_id", "occ", "ignore"}), "head_attr": frozenset({"ignore"})}


def read_odgt(
    path: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    strict: bool = False,
    keep_fields: bool = False,
    box_dtype=np.float32,
) -> list[ImageRecord]:
    """Read a CrowdHuman `.odgt` file into one `ImageRecord` per valid line.

    Args:
        path: the annotation file.
        images_dir: folder of `<ID>.jpg` (or `.png`); default `<folder of path>/Images`.
        strict: raise `DataError(message, path, line)` on the first problem instead of skipping.
        keep_fields: also keep the fields no attribute holds (`fields`, `box_fields`), for
            writing the records back without loss (a third slower; training needs none).
        box_dtype: dtype of the xyxy boxes; float64 keeps fractional boxes exactly as the
            CrowdDet evaluator reads them (x + w in float64), which evaluation needs.
    """
    return read_odgt_report(path, images_dir, strict, keep_fields, box_dtype)[0]


def read_odgt_report(
    path: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    strict: bool = False,
    keep_fields: bool = False,
    box_dtype=np.float32,
) -> tuple[list[ImageRecord], ReadReport]:
    """Like `read_odgt`, also returning the `ReadReport` of skipped and counted problems."""
    path = Path(path)
    images_dir = Path(images_dir) if images_dir is not None else path.parent / "Images"
    if not path.is_file():
        raise DataError("annotation file not found; check the path", str(path))
    report = ReadReport(str(path))
    records: list[ImageRecord] = []
    pending: list[tuple[int, dict]] = []
    seen: dict[str, int] = {}
    table = FieldTable(_BOX_KEYS, _NESTED_KEYS) if keep_fields else None
    with open(path, "rb") as f, paused_gc():
        for lineno, text in enumerate(f, 1):
            try:
                obj = _parse_json(text, lineno, report, strict) if text.strip() else None
                if obj is not None and obj["ID"] in seen:
                    msg = f"duplicate image ID {obj['ID']!r} (first at line {seen[obj['ID']]})"
                    report.problem(DUPLICATE, msg, strict, line=lineno)
                    continue
            except DataError:  # strict: a problem in an earlier, pending record comes first
                _build_records(pending, report, strict, table, box_dtype)
                raise
            if obj is None:
                continue
            seen[obj["ID"]] = lineno
            pending.append((lineno, obj))
            if len(pending) >= _CHUNK:
                records += _build_records(pending, report, strict, table, box_dtype)
                pending = []
        records += _build_records(pending, report, strict, table, box_dtype)
    names = set(os.listdir(images_dir)) if images_dir.is_dir() else set()
    for rec in records:
        rec.image_path = _image_path(images_dir, names, rec.image_id)
        rec.source = str(path)
        if len(rec) == 0:
            report.add(EMPTY, f"image {rec.image_id!r} has no boxes", line=rec.line)
    report.found = len(records)
    report.log_summary(logger)
    return records, report


def _image_path(images_dir: Path, names: set[str], image_id: str) -> str:
    """`<ID>.jpg`, or `<ID>.png` when only that exists (`names`: the folder's entries)."""
    jpg, png = f"{image_id}.jpg", f"{image_id}.png"
    if jpg not in names and (png in names or ("/" in image_id and (images_dir / png).exists())):
        return str(images_dir / png)
    return str(images_dir / jpg)


def _parse_json(text: bytes, lineno: int, report: ReadReport, strict: bool) -> dict | None:
    """One line -> its JSON object with a valid `ID` and `gtboxes`, or None once reported."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        msg = f"malformed JSON line ({e.msg} at column {e.colno})"
        report.problem(CORRUPT, msg, strict, line=lineno)
        return None
    except ValueError as e:  # not UTF-8
        report.problem(CORRUPT, f"malformed JSON line ({e})", strict, line=lineno)
        return None
    why = _record_error(obj)
    if why:
        report.problem(CORRUPT, why, strict, line=lineno)
        return None
    return obj


def _build_records(
    items: list[tuple[int, dict]],
    report: ReadReport,
    strict: bool,
    table: FieldTable | None,
    dtype=np.float32,
) -> list[ImageRecord]:
    """Records of a chunk of (line, object): one vectorised pass over all of its boxes; if any
    box needs a closer look, record by record (fast path, then box by box)."""
    if not items:
        return []
    gts = [obj["gtboxes"] for _, obj in items]
    flat = _boxes_fast([g for gt in gts for g in gt], dtype)
    if flat is not None:
        bounds = np.cumsum([len(gt) for gt in gts])[:-1]
        split = {key: np.split(value, bounds) for key, value in flat.items()}
        arrays = [{key: split[key][i] for key in split} for i in range(len(items))]
        kept = gts
    else:
        arrays, kept = [], []
        for (lineno, obj), gt in zip(items, gts, strict=True):
            one = _boxes_fast(gt, dtype)
            if one is None:
                one, gt = _boxes_checked(gt, obj["ID"], lineno, report, strict, dtype)
            arrays.append(one)
            kept.append(gt)
    records = [_record(lineno, obj, a) for (lineno, obj), a in zip(items, arrays, strict=True)]
    for rec, gt in zip(records, kept, strict=True):
        odd = [(i, g["tag"]) for i, g in enumerate(gt) if g["tag"] not in _TAGS]
        if odd:
            _note_tags(rec, odd, report)
    if table is not None:
        for rec, (_, obj), gt in zip(records, items, kept, strict=True):
            rec.fields = {k: v for k, v in obj.items() if k not in _RECORD_KEYS}
            rec.box_fields = _box_fields(gt, table)
    return records


def _note_tags(rec: ImageRecord, odd: list[tuple[int, str]], report: ReadReport) -> None:
    """One note for the boxes of a record whose tag is neither person nor mask."""
    shown = ", ".join(f"{tag!r} (box {i}, box_id {rec.box_ids[i]})" for i, tag in odd[:3])
    more = f" and {len(odd) - 3} more" if len(odd) > 3 else ""
    msg = f"image {rec.image_id!r}: unknown tag {shown}{more} read as an ignore region"
    report.add(UNKNOWN_TAG, msg, line=rec.line, count=len(odd))


def _box_fields(gt: list[dict], table: FieldTable) -> list[dict]:
    """Per box, the fields no attribute holds (the tag too when the writer would change it)."""
    out, any_fields = [], False
    for g in gt:
        tag, extra = g["tag"], g.get("extra", _EMPTY)
        written = "mask" if tag != "person" or extra.get("ignore", 0) else "person"
        fields = table.unknown(g, tag=tag) if tag != written else table.unknown(g)
        any_fields = any_fields or bool(fields)
        out.append(fields)
    return out if any_fields else []


def _record(lineno: int, obj: dict, arrays: dict[str, np.ndarray]) -> ImageRecord:
    width, height = obj.get("width"), obj.get("height")
    sized = number(width) and number(height) and width > 0 and height > 0
    return ImageRecord(
        image_id=obj["ID"],
        width=int(width) if sized else 0,
        height=int(height) if sized else 0,
        line=lineno,
        **arrays,
    )


def _record_error(obj) -> str | None:
    """Why a parsed line is not a valid record, or None."""
    if not isinstance(obj, dict):
        return f"expected a JSON object with 'ID' and 'gtboxes', got {type(obj).__name__}"
    for key in ("ID", "gtboxes"):
        if key not in obj:
            return f"missing field {key!r}"
    if not isinstance(obj["ID"], str) or not obj["ID"]:
        return f"field 'ID' must be a non-empty string, got {obj['ID']!r}"
    if not isinstance(obj["gtboxes"], list):
        return f"field 'gtboxes' must be a list, got {type(obj['gtboxes']).__name__}"
    return None


def _finish(
    fbox, vbox, hbox, tags, ignore, head_ignore, box_ids, occ, dtype=np.float32
) -> dict[str, np.ndarray]:
    """Per-box lists/arrays of one record -> ImageRecord array fields (xyxy of `dtype`)."""
    is_person = np.array([t == "person" for t in tags], bool)
    return {
        "fbox": xywh_to_xyxy(fbox, dtype),
        "vbox": xywh_to_xyxy(vbox, dtype),
        "hbox": xywh_to_xyxy(hbox, dtype),
        "ignore": ~is_person | (np.asarray(ignore, np.float64).reshape(-1) != 0),
        "head_ignore": np.asarray(head_ignore, np.float64).reshape(-1) != 0,
        "box_ids": np.asarray(box_ids, np.int64).reshape(-1),
        "occ": np.asarray(occ, np.float32).reshape(-1),
    }


def _boxes_fast(gt: list, dtype=np.float32) -> dict[str, np.ndarray] | None:
    """Vectorised parse of a clean `gtboxes` list; None when anything needs a closer look."""
    if not gt:
        return _finish(*(np.zeros((0, 4)),) * 3, [], [], [], [], [], dtype)
    try:
        extras = [g.get("extra", _EMPTY) for g in gt]
        heads = [g.get("head_attr", _EMPTY) for g in gt]
        tags = [g["tag"] for g in gt]
        parts = [
            numeric_array([g["fbox"] for g in gt], 2),
            numeric_array([g.get("vbox", NAN4) for g in gt], 2),
            numeric_array([g.get("hbox", NAN4) for g in gt], 2),
            numeric_array([e.get("ignore", 0) for e in extras], 1),
            numeric_array([h.get("ignore", 0) for h in heads], 1),
            numeric_array([e.get("box_id", -1) for e in extras], 1),
            numeric_array([e.get("occ", math.nan) for e in extras], 1),
        ]
    except (KeyError, AttributeError, TypeError, ValueError):
        return None
    if any(p is None for p in parts) or not all(type(t) is str for t in tags):
        return None
    fbox, vbox, hbox, ignore, head_ignore, box_ids, occ = parts
    if not (
        valid_xywh_rows(fbox, allow_nan=False)
        and valid_xywh_rows(vbox, allow_nan=True)
        and valid_xywh_rows(hbox, allow_nan=True)
        and np.isfinite(ignore).all()
        and np.isfinite(head_ignore).all()
        and box_ids.dtype.kind in "iu"
    ):
        return None
    return _finish(fbox, vbox, hbox, tags, ignore, head_ignore, box_ids, occ, dtype)


def _boxes_checked(
    gt: list, image_id: str, lineno: int, report: ReadReport, strict: bool, dtype=np.float32
) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Box-by-box parse: invalid boxes are reported and skipped; a bad vbox/hbox becomes NaN.
    Returns the arrays and the boxes kept."""
    rows: list[tuple] = []
    kept: list[dict] = []
    for i, g in enumerate(gt):
        where = f"image {image_id!r} box {i}"
        if isinstance(g, dict) and isinstance(g.get("extra"), dict) and "box_id" in g["extra"]:
            where += f" (box_id {g['extra']['box_id']!r})"
        row, errors = _parse_box(g)
        for err in errors:
            report.problem(INVALID_BOX, f"{where}: {err}", strict, line=lineno)
        if row is not None:
            rows.append(row)
            kept.append(g)
    if not rows:
        return _boxes_fast([], dtype), kept
    return _finish(*(list(col) for col in zip(*rows, strict=True)), dtype), kept


def _parse_box(g) -> tuple[tuple | None, list[str]]:
    """One gtboxes entry -> (row for `_finish` or None if skipped, problems found)."""
    if not isinstance(g, dict):
        return None, [f"expected a JSON object, got {type(g).__name__}"]
    tag, extra, head = g.get("tag"), g.get("extra", _EMPTY), g.get("head_attr", _EMPTY)
    fatal = []
    if not isinstance(tag, str):
        fatal.append("missing field 'tag'" if tag is None else f"'tag' must be a string: {tag!r}")
    for name, value in (("extra", extra), ("head_attr", head)):
        if not isinstance(value, dict):
            fatal.append(f"{name!r} must be a JSON object, got {type(value).__name__}")
    if "fbox" not in g:
        fatal.append("missing field 'fbox'")
    elif why := check_xywh(g["fbox"], "fbox"):
        fatal.append(why)
    if not fatal:
        fatal += _attr_errors(extra, head)
    if fatal:
        return None, fatal
    problems, parts = [], []
    for name in ("vbox", "hbox"):
        why = check_xywh(g[name], name) if name in g else None
        problems += [why] if why else []
        parts.append(NAN4 if why or name not in g else g[name])
    row = (
        g["fbox"],
        parts[0],
        parts[1],
        tag,
        extra.get("ignore", 0),
        head.get("ignore", 0),
        extra.get("box_id", -1),
        extra.get("occ", math.nan),
    )
    return row, problems


def _attr_errors(extra: dict, head: dict) -> list[str]:
    errors = []
    for name, value in (
        ("extra.ignore", extra.get("ignore", 0)),
        ("head_attr.ignore", head.get("ignore", 0)),
        ("extra.occ", extra.get("occ", 0)),
    ):
        if not (number(value) or isinstance(value, bool)):
            errors.append(f"{name} must be a number, got {value!r}")
    box_id = extra.get("box_id", -1)
    if not (isinstance(box_id, int) and not isinstance(box_id, bool)):
        errors.append(f"extra.box_id must be an integer, got {box_id!r}")
    return errors


def record_to_json(rec: ImageRecord, parts: dict[str, list] | None = None) -> dict:
    """One ImageRecord -> one odgt JSON object (xywh, person/mask tag from `ignore`), with the
    record's `fields` / `box_fields` merged in (a carried tag is kept where it agrees with
    `ignore`).

    `parts` ("fbox", "vbox", "hbox" -> xywh lists) may be given when converted in a batch.
    """
    if parts is None:
        parts = {k: xyxy_to_xywh_lists(rec.boxes(kind)) for k, kind in _KINDS.items()}
    ignore, head_ignore = rec.ignore.tolist(), rec.head_ignore.tolist()
    box_ids, occ = rec.box_ids.tolist(), rec.occ.tolist()
    boxes = []
    for i in range(len(rec)):
        g: dict = {"tag": "mask" if ignore[i] else "person"}
        for key in ("fbox", "vbox", "hbox"):
            if parts[key][i] is not None:
                g[key] = parts[key][i]
        extra: dict = {}
        if box_ids[i] >= 0:
            extra["box_id"] = box_ids[i]
        if math.isfinite(occ[i]):
            extra["occ"] = int(occ[i]) if float(occ[i]).is_integer() else occ[i]
        if ignore[i]:
            extra["ignore"] = 1
        g["extra"] = extra
        g["head_attr"] = {"ignore": int(head_ignore[i])} if head_ignore[i] or not ignore[i] else {}
        if rec.box_fields:
            _merge_box_fields(g, rec.box_fields[i], ignore[i])
        boxes.append(g)
    obj: dict = {"ID": rec.image_id, "gtboxes": boxes}
    if rec.width > 0 and rec.height > 0:
        obj["width"], obj["height"] = int(rec.width), int(rec.height)
    return merge_fields(obj, rec.fields)


def _merge_box_fields(g: dict, fields: dict, ignore: bool) -> None:
    tag = fields.get("tag")
    if isinstance(tag, str) and (ignore or tag == "person"):  # another tag reads as ignore
        g["tag"] = tag
    merge_fields(g, fields)


_KINDS = {"fbox": "full", "vbox": "visible", "hbox": "head"}


def write_odgt(records: list[ImageRecord], path: str | os.PathLike) -> None:
    """Write records as a `.odgt` file, atomically (the inverse of `read_odgt`).

    Image sizes, when known, are written as `width` / `height` (the CrowdHuman evaluator reads
    them when present); `image_path` is not written: readers rebuild it from the ID.
    """
    with atomic_open(path, "w") as f:
        for start in range(0, len(records), _CHUNK):
            chunk = records[start : start + _CHUNK]
            parts = {
                key: xywh_lists_per_record([r.boxes(kind) for r in chunk])
                for key, kind in _KINDS.items()
            }
            for i, rec in enumerate(chunk):
                obj = record_to_json(rec, {key: parts[key][i] for key in parts})
                f.write(json.dumps(obj))
                f.write("\n")
