"""Array operations of the transforms on (image HxWx3 uint8 BGR, boxes (N,4) xyxy), with cv2.

The transforms themselves, which move a whole `Sample`, are in crowdet.data.pipeline.
"""

from __future__ import annotations

import cv2
import numpy as np


def letterbox_scale(height: int, width: int, size: int) -> float:
    """Scale that makes the longer side of an image `size` pixels."""
    return size / max(height, width)


def resize_image(image: np.ndarray, scale: float, fast: bool = False) -> np.ndarray:
    """Resize by `scale` (aspect kept): INTER_AREA when shrinking, INTER_LINEAR when enlarging;
    fast: INTER_LINEAR always (about 5x faster when shrinking; YOLOv5 trains so)."""
    if scale == 1.0:
        return image
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 and not fast else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interp)


def resize(image: np.ndarray, boxes: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Resize by `scale` (aspect kept); boxes scaled alike."""
    if scale == 1.0:
        return image, boxes
    return resize_image(image, scale), boxes * np.float32(scale)


def hflip_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
    """(N, 4) xyxy boxes mirrored left-right in an image `width` pixels wide."""
    flipped = boxes.copy()
    flipped[:, 0], flipped[:, 2] = width - boxes[:, 2], width - boxes[:, 0]
    return flipped


def hsv_jitter(image: np.ndarray, gains: tuple[float, float, float], rng: np.random.Generator):
    """Random hue / saturation / value change; gains as in YOLOv5 (0 = off, no draw)."""
    if not any(gains):
        return image
    r = rng.uniform(-1, 1, 3) * np.asarray(gains) + 1
    hue, sat, val = cv2.split(cv2.cvtColor(image, cv2.COLOR_BGR2HSV))
    x = np.arange(256, dtype=np.float32)
    lut_h = ((x * r[0]) % 180).astype(np.uint8)
    lut_s = np.clip(x * r[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * r[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hue, lut_h), cv2.LUT(sat, lut_s), cv2.LUT(val, lut_v)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def clip_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N, 4) xyxy boxes clipped to a height x width image (NaN rows stay NaN)."""
    out = boxes.copy()
    out[:, 0::2] = out[:, 0::2].clip(0, width)
    out[:, 1::2] = out[:, 1::2].clip(0, height)
    return out


def keep_ratio_scale(height: int, width: int, short: int, max_size: int) -> float:
    """Scale that makes the shorter side `short` pixels, the longer side at most `max_size`."""
    return min(short / min(height, width), max_size / max(height, width))


def box_area(boxes: np.ndarray) -> np.ndarray:
    """(N,) areas of (N, 4) xyxy boxes (0 for empty ones, NaN for NaN rows)."""
    wh = boxes[:, 2:] - boxes[:, :2]
    return np.where(np.isnan(wh).any(1), np.nan, wh.clip(0).prod(1))


def clip_to_window(boxes: np.ndarray, window) -> np.ndarray:
    """(N, 4) xyxy boxes cut to the (x1, y1, x2, y2) window; a box outside it becomes empty."""
    x1, y1, x2, y2 = window
    out = boxes.copy()
    out[:, 0::2] = out[:, 0::2].clip(x1, x2)
    out[:, 1::2] = out[:, 1::2].clip(y1, y2)
    return out


def affine_boxes(boxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy boxes through a 2x3 affine `matrix` (continuous pixel coordinates): the box
    enclosing the four moved corners."""
    x1, y1, x2, y2 = boxes.T
    xs = np.stack([x1, x2, x2, x1], 1)
    ys = np.stack([y1, y1, y2, y2], 1)
    a = matrix.astype(np.float32)
    tx = a[0, 0] * xs + a[0, 1] * ys + a[0, 2]
    ty = a[1, 0] * xs + a[1, 1] * ys + a[1, 2]
    return np.stack([tx.min(1), ty.min(1), tx.max(1), ty.max(1)], 1).astype(np.float32)


def warp_image(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int], fill=114):
    """`image` through the 2x3 affine `matrix` of continuous coordinates (a pixel i covers
    [i, i + 1)) into a (height, width) = `size` image, grey `fill` outside."""
    shift = matrix[:, :2] @ np.array([0.5, 0.5]) + matrix[:, 2] - 0.5  # cv2 puts pixel i at i
    m = np.concatenate([matrix[:, :2], shift[:, None]], 1)
    h, w = size
    return cv2.warpAffine(
        image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
        borderValue=(fill, fill, fill),
    )  # fmt: skip


def box_minus_rect(boxes: np.ndarray, rect, min_side: float = 0.0) -> np.ndarray:
    """(N, 4) xyxy: the box enclosing what remains of each box once the (x1, y1, x2, y2) `rect`
    covers it (the box itself when they do not overlap; NaN when it is covered whole). A strip
    left beside the rect narrower than `min_side` does not count as remaining."""
    x1, y1, x2, y2 = boxes.T
    px1, py1, px2, py2 = rect
    strips = np.stack(
        [
            np.stack([x1, y1, np.minimum(px1, x2), y2], 1),  # left of rect
            np.stack([np.maximum(px2, x1), y1, x2, y2], 1),  # right
            np.stack([x1, y1, x2, np.minimum(py1, y2)], 1),  # above
            np.stack([x1, np.maximum(py2, y1), x2, y2], 1),  # below
        ],
        1,
    )  # (N, 4 strips, 4)
    sides = strips[..., 2:] - strips[..., :2]
    exists = (sides > 0).all(-1) & (sides >= min_side).all(-1)
    lo = np.where(exists[..., None], strips[..., :2], np.inf).min(1)
    hi = np.where(exists[..., None], strips[..., 2:], -np.inf).max(1)
    out = np.concatenate([lo, hi], 1).astype(np.float32)
    out[~exists.any(1)] = np.nan
    across = np.minimum(x2, px2) > np.maximum(x1, px1)
    overlap = across & (np.minimum(y2, py2) > np.maximum(y1, py1))
    return np.where(overlap[:, None], out, boxes)
