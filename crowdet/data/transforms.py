"""Array operations of the transforms on (image HxWx3 uint8 BGR, boxes (N,4) xyxy), with cv2.

The transforms themselves, which move a whole `Sample`, are in crowdet.data.pipeline.
"""

from __future__ import annotations

import cv2
import numpy as np


def letterbox_scale(height: int, width: int, size: int) -> float:
    """Scale that makes the longer side of an image `size` pixels."""
    return size / max(height, width)


def resize_image(image: np.ndarray, scale: float) -> np.ndarray:
    """Resize by `scale` (aspect kept): INTER_AREA when shrinking, INTER_LINEAR when enlarging."""
    if scale == 1.0:
        return image
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
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
