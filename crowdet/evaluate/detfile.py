"""Detection files: read and write the two formats the field uses.

- CrowdHuman result lines (what CrowdDet's evaluator reads): one JSON object per line,
  `{"ID", "width", "height", "dtboxes": [{"box": [x, y, w, h], "score": s, "tag": 1}, ...]}`.
  Extra keys (e.g. `gtboxes`) are ignored; a JSON list of such objects (mmdetection's dump) is
  read too. A detection may carry its person's visible box as `"vbox": [x, y, w, h]` (a head
  that predicts visible boxes); reading with `box="visible"` scores those (lines without any
  `vbox` are read from `box`, as a run trained on visible boxes writes them).
- COCO results: a JSON list `[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]`.
  `image_id` is looked up in `id_map` (COCO image id -> record ID, `coco_image_ids` of a COCO GT
  file), else taken as the record ID itself (as a string). When several categories occur only
  `category_id == 1` (COCO's person) is kept.

Boxes become float64 xyxy (x + w in float64, as the reference computes it). Every problem raises
`DataError(message, path, line)` naming the line (and the list item for JSON lists).

Two things are legal but usually a mistake, and are counted (`DetectionFile.check`): detections
with a non-positive width or height (scored like any other: false positives, as the reference
scores them), and GT images without a detection line (their people all missed; the sign of a
cut-off results file). Both are warnings, errors with `strict`.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crowdet.data.atomic import atomic_open
from crowdet.data.boxfmt import number, numeric_array, paused_gc
from crowdet.errors import DataError

logger = logging.getLogger(__name__)

COCO_PERSON = 1


@dataclass
class DetectionFile:
    """Detections read from a file.

    Attributes:
        dets: image ID -> (boxes (N, 4) float64 xyxy, scores (N,) float64).
        sizes: image ID -> (W, H) where the file gives them (CrowdHuman lines).
        format: "crowdhuman" or "coco".
        lines: image ID -> the line it first appears on (for error messages).
        degenerate: image ID -> (K,) indices (in the line's `dtboxes`, or the image's results in
            file order) of its detections with a non-positive width or height.
    """

    dets: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    format: str = "crowdhuman"
    lines: dict[str, int] = field(default_factory=dict)
    degenerate: dict[str, np.ndarray] = field(default_factory=dict)

    def check_ids(self, known, path: str | os.PathLike, gt_path: str | os.PathLike = "") -> None:
        """Raise DataError at the first image ID that is not in `known` (the GT's IDs)."""
        for image_id in self.dets:
            if image_id not in known:
                where = f" {gt_path}" if gt_path else ""
                raise DataError(
                    f"image ID {image_id!r} is not in the ground truth{where}; "
                    "are the detections for another set?",
                    str(path),
                    self.lines.get(image_id),
                )

    def check(self, known, path: str | os.PathLike, strict: bool = False) -> dict[str, int]:
        """Count the detections of non-positive size and (CrowdHuman lines only) the GT images
        of `known` (IDs, in GT order) without a detection line; warn once per kind with the
        first case, or raise DataError under `strict`.

        Returns:
            {"degenerate_dets": N, "degenerate_images": N, "images_without_line": N}.
        """
        counts = {"degenerate_dets": 0, "degenerate_images": 0, "images_without_line": 0}
        if self.degenerate:
            image_id, idx = next(iter(self.degenerate.items()))
            counts["degenerate_dets"] = sum(len(v) for v in self.degenerate.values())
            counts["degenerate_images"] = len(self.degenerate)
            what = "dtboxes" if self.format == "crowdhuman" else "result"
            first = f"image {image_id!r} {what}[{int(idx[0])}]"
            msg = (
                f"{counts['degenerate_dets']} detection(s) in {counts['degenerate_images']} "
                f"image(s) have a non-positive width or height (first: {first}); they are "
                "scored as false positives"
            )
            self._warn_or_raise(msg, path, self.lines.get(image_id), strict)
        if self.format == "crowdhuman":
            missing = [i for i in known if i not in self.dets]
            counts["images_without_line"] = len(missing)
            if missing:
                msg = (
                    f"{len(missing)} of {len(known)} ground-truth images have no detection line "
                    f"(first: {missing[0]!r}); they count as images without detections: is the "
                    "file cut off?"
                )
                self._warn_or_raise(msg, path, None, strict)
        return counts

    @staticmethod
    def _warn_or_raise(msg: str, path, line: int | None, strict: bool) -> None:
        if strict:
            raise DataError(f"{msg} (--strict)", str(path), line)
        where = f"{path}:{line}" if line else str(path)
        logger.warning("%s: %s", where, msg)


def _box_error(box) -> str | None:
    if not isinstance(box, list) or len(box) != 4 or not all(number(v) for v in box):
        return f"box must be 4 finite numbers [x, y, w, h], got {box!r}"
    return None


def _xyxy(rows: list[list[float]]) -> np.ndarray:
    b = np.asarray(rows, np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], 1)


def _box_key(boxes: list, kind: str) -> str:
    """The key a `dtboxes` list gives the boxes of `kind` under: "vbox" for visible boxes when
    any detection carries one, else "box"."""
    if kind == "visible" and any(isinstance(d, dict) and "vbox" in d for d in boxes):
        return "vbox"
    return "box"


def _dtboxes_fast(boxes: list, key: str = "box") -> tuple[np.ndarray, np.ndarray] | None:
    """Vectorised parse of a clean `dtboxes` list: (boxes (N, 4) xywh under `key`, scores
    (N,)), or None when anything needs the box-by-box check."""
    try:
        xywh = numeric_array([d[key] for d in boxes], 2) if boxes else np.zeros((0, 4))
        scores = numeric_array([d["score"] for d in boxes], 1) if boxes else np.zeros(0)
    except (KeyError, TypeError, IndexError):
        return None
    if xywh is None or scores is None or "b" in (xywh.dtype.kind, scores.dtype.kind):
        return None
    if not (np.isfinite(xywh).all() and np.isfinite(scores).all()):
        return None
    return xywh, scores


def _dtboxes_error(boxes: list, key: str = "box") -> str:
    """The first problem of a `dtboxes` list the fast path refused."""
    for j, d in enumerate(boxes):
        if not isinstance(d, dict):
            return f"dtboxes[{j}]: expected an object, got {d!r}"
        why = _box_error(d.get(key))
        if why and key == "vbox":
            why = "v" + why + " (some detections of this line carry a vbox, all must)"
        if why is None and not number(d.get("score")):
            why = f"score must be a finite number, got {d.get('score')!r}"
        if why:
            return f"dtboxes[{j}]: {why}"
    return "dtboxes: not a list of {'box', 'score'} objects"


def _crowdhuman_record(obj, out: DetectionFile, line: int, kind: str = "full") -> str | None:
    """Add one CrowdHuman result object to `out`; the reason it is invalid, or None."""
    if not isinstance(obj, dict):
        return f"expected a JSON object with 'ID' and 'dtboxes', got {type(obj).__name__}"
    image_id, boxes = obj.get("ID"), obj.get("dtboxes")
    if not isinstance(image_id, str) or not image_id:
        return f"field 'ID' must be a non-empty string, got {image_id!r}"
    if not isinstance(boxes, list):
        return f"image {image_id!r}: field 'dtboxes' must be a list, got {boxes!r}"
    if image_id in out.dets:
        return f"image {image_id!r} appears twice"
    key = _box_key(boxes, kind)
    parsed = _dtboxes_fast(boxes, key)
    if parsed is None:
        return f"image {image_id!r} {_dtboxes_error(boxes, key)}"
    width, height = obj.get("width"), obj.get("height")
    if width is not None or height is not None:
        if not (number(width) and number(height) and width > 0 and height > 0):
            return f"image {image_id!r}: width/height must be positive numbers"
        out.sizes[image_id] = (int(width), int(height))
    out.dets[image_id] = (_xyxy(parsed[0]), parsed[1].astype(np.float64))
    out.lines[image_id] = line
    _note_degenerate(out, image_id, parsed[0])
    return None


def _note_degenerate(out: DetectionFile, image_id: str, xywh: np.ndarray) -> None:
    """Record the detections of one image whose width or height is not positive."""
    bad = np.flatnonzero((xywh[:, 2] <= 0) | (xywh[:, 3] <= 0))
    if len(bad):
        out.degenerate[image_id] = bad


def _coco_item(obj, id_map: dict | None, rows: dict[str, list], out, line: int) -> str | None:
    """Collect one COCO result into `rows` (ID -> [(box, score, category)]); why invalid or None."""
    if not isinstance(obj, dict):
        return f"expected a JSON object with 'image_id', 'bbox', 'score', got {type(obj).__name__}"
    for key in ("image_id", "bbox", "score"):
        if key not in obj:
            return f"missing field {key!r}"
    if why := _box_error(obj["bbox"]):
        return why
    if not number(obj["score"]):
        return f"score must be a finite number, got {obj['score']!r}"
    key = obj["image_id"]
    if isinstance(key, bool) or not isinstance(key, int | str):
        return f"image_id must be an integer or a string, got {key!r}"
    image_id = id_map[key] if id_map and key in id_map else str(key)
    out.lines.setdefault(image_id, line)
    rows.setdefault(image_id, []).append((obj["bbox"], obj["score"], obj.get("category_id", 1)))
    return None


def _coco_dets(
    rows: dict[str, list], out: DetectionFile
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    categories = {c for items in rows.values() for _, _, c in items}
    only_person = len(categories) > 1
    if only_person:
        logger.info("COCO results with categories %s: keeping category 1 (person)", categories)
    dets = {}
    for image_id, items in rows.items():
        kept = [(b, s) for b, s, c in items if not only_person or c == COCO_PERSON]
        dets[image_id] = (_xyxy([b for b, _ in kept]), np.asarray([s for _, s in kept], float))
        _note_degenerate(out, image_id, np.asarray([b for b, _ in kept], float).reshape(-1, 4))
    return dets


def _json_list_items(text: str, path: Path):
    """Yield (line, item) for each element of a JSON list, with the line it starts on."""
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text):
            raise DataError("unterminated JSON list", str(path), text.count("\n") + 1)
        if text[pos] == "]":
            return
        line = text.count("\n", 0, pos) + 1
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise DataError(f"malformed JSON ({e.msg})", str(path), e.lineno) from None
        yield line, item


def read_detections(
    path: str | os.PathLike, id_map: dict | None = None, kind: str = "full"
) -> DetectionFile:
    """Read CrowdHuman result lines or a COCO results list (see the module docstring); kind
    "visible": the `vbox` of CrowdHuman lines that carry them."""
    path = Path(path)
    if not path.is_file():
        raise DataError("detection file not found; check the path", str(path))
    with paused_gc():
        return _read_text(path.read_text(encoding="utf-8"), path, id_map, kind)


def _read_text(text: str, path: Path, id_map: dict | None, kind: str = "full") -> DetectionFile:
    """The detections of a file's whole text (JSON list or lines)."""
    stripped = text.lstrip()
    out = DetectionFile()
    if stripped.startswith("["):
        rows: dict[str, list] = {}
        for i, (line, item) in enumerate(_json_list_items(text, path)):
            if isinstance(item, dict) and "dtboxes" in item:
                why = _crowdhuman_record(item, out, line, kind)
            else:
                out.format = "coco"
                why = _coco_item(item, id_map, rows, out, line)
            if why:
                raise DataError(f"item {i}: {why}", str(path), line)
        if out.format == "coco":
            if out.dets:
                raise DataError("mixes CrowdHuman and COCO results", str(path))
            out.dets = _coco_dets(rows, out)
        return out
    for line, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError as e:
            raise DataError(f"malformed JSON line ({e})", str(path), line) from None
        if why := _crowdhuman_record(obj, out, line, kind):
            raise DataError(why, str(path), line)
    return out


def write_crowdhuman_dets(
    path: str | os.PathLike,
    dets: dict[str, tuple[np.ndarray, np.ndarray]],
    sizes: dict[str, tuple[int, int]] | None = None,
    visible: dict[str, np.ndarray] | None = None,
) -> None:
    """Write CrowdHuman result lines, atomically, one line per image of `dets` (in its order).

    Args:
        dets: image ID -> (boxes (N, 4) xyxy, scores (N,)).
        sizes: image ID -> (W, H), written as width/height (what the evaluator clips to).
        visible: image ID -> (N, 4) xyxy visible boxes, written as each detection's `vbox`.
    """
    sizes, visible = sizes or {}, visible or {}
    with atomic_open(path, "w") as f:
        for image_id, (boxes, scores) in dets.items():
            b = np.asarray(boxes, np.float64).reshape(-1, 4)
            xywh = np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], 1).tolist()
            obj: dict = {"ID": image_id}
            if image_id in sizes:
                obj["width"], obj["height"] = int(sizes[image_id][0]), int(sizes[image_id][1])
            s = np.asarray(scores, np.float64).reshape(-1).tolist()
            obj["dtboxes"] = [{"box": x, "score": v, "tag": 1} for x, v in zip(xywh, s)]
            if image_id in visible:
                v = np.asarray(visible[image_id], np.float64).reshape(-1, 4)
                vxywh = np.concatenate([v[:, :2], v[:, 2:] - v[:, :2]], 1).tolist()
                for d, vb in zip(obj["dtboxes"], vxywh, strict=True):
                    d["vbox"] = vb
            f.write(json.dumps(obj) + "\n")


def write_coco_results(
    path: str | os.PathLike, dets: dict[str, tuple[np.ndarray, np.ndarray]], category_id: int = 1
) -> None:
    """Write a COCO results list, atomically: one `{"image_id", "category_id", "bbox": [x, y,
    w, h], "score"}` per detection; image_id is the image ID (an integer when it is one)."""
    items = []
    for image_id, (boxes, scores) in dets.items():
        key = int(image_id) if image_id.isdigit() else image_id
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        xywh = np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], 1).tolist()
        s = np.asarray(scores, np.float64).reshape(-1).tolist()
        items += [
            {"image_id": key, "category_id": category_id, "bbox": x, "score": v}
            for x, v in zip(xywh, s)
        ]
    with atomic_open(path, "w") as f:
        json.dump(items, f)
