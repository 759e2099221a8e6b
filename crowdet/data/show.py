"""Pictures of annotations: full (green), visible (blue), head (yellow) boxes and ignore regions
(red, hatched and translucent), with a legend. Images are BGR uint8 arrays (OpenCV)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import cv2
import numpy as np

from crowdet.data.records import ImageRecord

logger = logging.getLogger(__name__)

# BGR colours
FULL_COLOR = (0, 200, 0)  # green
VISIBLE_COLOR = (255, 120, 0)  # blue
HEAD_COLOR = (0, 230, 255)  # yellow
IGNORE_COLOR = (0, 0, 255)  # red
LEGEND = (
    ("full body", FULL_COLOR),
    ("visible", VISIBLE_COLOR),
    ("head", HEAD_COLOR),
    ("ignore region", IGNORE_COLOR),
)


def _int_boxes(boxes: np.ndarray) -> np.ndarray:
    keep = np.isfinite(boxes).all(1)
    return np.round(boxes[keep]).astype(np.int64)


def _thickness(image: np.ndarray) -> int:
    return max(1, round(min(image.shape[:2]) / 400))


def shade_regions(image: np.ndarray, boxes: np.ndarray, color=IGNORE_COLOR, alpha=0.3) -> None:
    """Blend `color` into each (N, 4) xyxy region of `image` in place, with diagonal hatching."""
    h, w = image.shape[:2]
    step = max(8, _thickness(image) * 8)
    for x1, y1, x2, y2 in _int_boxes(boxes):
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
        if x2 <= x1 or y2 <= y1:
            continue
        crop = image[y1:y2, x1:x2]
        yy, xx = np.mgrid[y1:y2, x1:x2]
        hatch = ((xx + yy) % step) < max(2, step // 6)
        tint = np.asarray(color, np.float32)
        blended = crop.astype(np.float32) * (1 - alpha) + tint * alpha
        blended[hatch] = tint
        crop[:] = blended.astype(np.uint8)


def draw_rectangles(image: np.ndarray, boxes: np.ndarray, color, thickness: int) -> None:
    """Draw (N, 4) xyxy rectangles in place (NaN rows skipped)."""
    for x1, y1, x2, y2 in _int_boxes(boxes):
        cv2.rectangle(image, (int(x1), int(y1)), (int(x2), int(y2)), color, thickness, cv2.LINE_8)


def legend_bar(width: int, title: str = "") -> np.ndarray:
    """A white (H, width, 3) strip: the title, then the four colours with their names."""
    scale = min(max(0.35, width / 1400), 1.2)
    thick = max(1, round(scale * 1.5))
    line_h = max(14, int(24 * scale) + 6)
    bar = np.full((line_h * (2 if title else 1) + 4, width, 3), 255, np.uint8)
    y = 2
    if title:
        cv2.putText(bar, title, (6, y + line_h - 6), 0, scale, (0, 0, 0), thick, cv2.LINE_AA)
        y += line_h
    x = 6
    for name, color in LEGEND:
        side = line_h - 6
        cv2.rectangle(bar, (x, y + 3), (x + side, y + 3 + side), color, -1)
        x += side + 4
        cv2.putText(bar, name, (x, y + line_h - 6), 0, scale, (0, 0, 0), thick, cv2.LINE_AA)
        x += cv2.getTextSize(name, 0, scale, thick)[0][0] + 3 * side
    return bar


def draw_record(
    image: np.ndarray, rec: ImageRecord, legend: bool = True, note: str = ""
) -> np.ndarray:
    """A copy of `image` (H, W, 3) BGR with the record's boxes drawn (see the module docstring),
    below a legend strip when `legend` (the strip adds rows above the image, never hides it)."""
    out = image.copy()
    t = _thickness(out)
    people = ~rec.ignore
    shade_regions(out, rec.fbox[rec.ignore])
    draw_rectangles(out, rec.fbox[rec.ignore], IGNORE_COLOR, t)
    draw_rectangles(out, rec.fbox[people], FULL_COLOR, t)
    draw_rectangles(out, rec.vbox[people], VISIBLE_COLOR, t)
    draw_rectangles(out, rec.hbox[people & ~rec.head_ignore], HEAD_COLOR, t)
    if legend:
        title = f"{rec.image_id}: {rec.num_people} people, {int(rec.ignore.sum())} ignore"
        title += f" ({note})" if note else ""
        out = np.vstack([legend_bar(out.shape[1], title), out])
    return out


def safe_name(image_id: str) -> str:
    """A file name for an image ID (path separators and odd characters replaced)."""
    return re.sub(r"[^A-Za-z0-9,._+-]", "_", image_id).strip(".") or "image"


def pad_for_boxes(image: np.ndarray, rec: ImageRecord, max_pad: int = 400) -> tuple:
    """Grey border so that full boxes past the image edge stay visible; returns (image, record).

    The border is as wide as the farthest box overhang, capped at `max_pad` pixels.
    """
    h, w = image.shape[:2]
    boxes = rec.fbox[np.isfinite(rec.fbox).all(1)]
    if len(boxes) == 0:
        return image, rec
    over = np.array(
        [-boxes[:, 0].min(), -boxes[:, 1].min(), boxes[:, 2].max() - w, boxes[:, 3].max() - h]
    )
    left, top, right, bottom = np.clip(np.ceil(over), 0, max_pad).astype(int).tolist()
    if not any((left, top, right, bottom)):
        return image, rec
    padded = cv2.copyMakeBorder(
        image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(96, 96, 96)
    )
    shift = np.array([left, top, left, top], np.float32)
    moved = ImageRecord(
        **{
            **rec.__dict__,
            "fbox": rec.fbox + shift,
            "vbox": rec.vbox + shift,
            "hbox": rec.hbox + shift,
        }
    )
    return padded, moved


def save_picture(image: np.ndarray, rec: ImageRecord, out_dir: Path, pad: bool = True) -> Path:
    """Draw `rec` on `image` and write `<out_dir>/<safe ID>.png`; returns the path."""
    note = ""
    if pad:
        padded, rec = pad_for_boxes(image, rec)
        note = "grey border: outside the image" if padded.shape != image.shape else ""
        image = padded
    path = Path(out_dir) / f"{safe_name(rec.image_id)}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), draw_record(image, rec, note=note)):
        raise OSError(f"cannot write {path}")
    return path
