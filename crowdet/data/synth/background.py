"""Cluttered backgrounds: a far part above the horizon (sky, buildings with windows, walls with
posters, tree lines) and a textured ground plane below it (tiles or stripes in perspective, grass,
asphalt), with low-frequency texture noise on top."""

from __future__ import annotations

import cv2
import numpy as np

SCENES = ("street", "plaza", "indoor", "park")
GROUNDS = {  # BGR base colour of the ground per scene
    "street": (95, 95, 100),
    "plaza": (150, 165, 175),
    "indoor": (90, 120, 150),
    "park": (70, 130, 95),
}


def _jitter(rng: np.random.Generator, colour, amount: float = 25.0) -> tuple[int, ...]:
    return tuple(int(v) for v in np.clip(np.asarray(colour) + rng.normal(0, amount, 3), 0, 255))


def _gradient(img: np.ndarray, top, bottom) -> None:
    """Fill img (h, w, 3) with a vertical blend from colour `top` to `bottom`."""
    ends = np.array([[top], [bottom]], np.uint8)  # (2, 1, 3)
    cv2.resize(ends, (img.shape[1], img.shape[0]), dst=img, interpolation=cv2.INTER_LINEAR)


def _buildings(img: np.ndarray, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    x = -rng.uniform(0, 0.2) * w
    while x < w:
        bw = rng.uniform(0.1, 0.35) * w
        top = int(rng.uniform(-0.3, 0.7) * h)
        colour = _jitter(rng, (120, 130, 140), 40)
        cv2.rectangle(img, (int(x), top), (int(x + bw), h), colour, -1)
        _windows(img, int(x), top, int(bw), h - top, rng)
        if rng.random() < 0.5:  # a shop sign near the street
            sy = int(h - rng.uniform(0.1, 0.3) * h)
            cv2.rectangle(
                img,
                (int(x + 0.1 * bw), sy),
                (int(x + 0.8 * bw), sy + max(2, h // 12)),
                _jitter(rng, (60, 60, 200), 80),
                -1,
            )
        x += bw + rng.uniform(0, 0.05) * w


def _windows(img, x, y, bw, bh, rng: np.random.Generator) -> None:
    step = max(4, int(rng.uniform(0.08, 0.2) * bw))
    size = max(2, int(step * rng.uniform(0.4, 0.7)))
    dark = _jitter(rng, (70, 60, 50), 20)
    lit = _jitter(rng, (150, 200, 220), 25)
    for wy in range(y + step // 2, y + bh - step, step):
        for wx in range(x + step // 3, x + bw - size, step):
            colour = lit if rng.random() < 0.2 else dark
            cv2.rectangle(img, (wx, wy), (wx + size, wy + size), colour, -1)


def _wall(img: np.ndarray, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    _gradient(img, _jitter(rng, (190, 200, 205), 30), _jitter(rng, (150, 160, 170), 30))
    period = int(rng.uniform(0.05, 0.2) * w)
    for x in range(int(rng.uniform(0, period)), w, period):  # panels / pillars
        cv2.rectangle(img, (x, 0), (x + max(2, period // 8), h), _jitter(rng, (120, 125, 130)), -1)
    for _ in range(rng.integers(1, 6)):  # posters, doors, shop windows
        pw, ph = rng.uniform(0.05, 0.2) * w, rng.uniform(0.2, 0.7) * h
        px, py = rng.uniform(0, w), rng.uniform(0, h - ph)
        cv2.rectangle(
            img,
            (int(px), int(py)),
            (int(px + pw), int(py + ph)),
            _jitter(rng, rng.uniform(30, 220, 3), 10),
            -1,
        )


def _tree_line(img: np.ndarray, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(4, 14))):
        cx, r = rng.uniform(0, w), rng.uniform(0.1, 0.5) * h + 2
        cv2.ellipse(
            img,
            (int(cx), h),
            (int(r * 1.3), int(r * 2)),
            0,
            0,
            360,
            _jitter(rng, (50, 110, 60), 25),
            -1,
        )


def _far(img: np.ndarray, scene: str, rng: np.random.Generator) -> None:
    """Everything above the horizon."""
    if scene == "indoor":
        _wall(img, rng)
        return
    _gradient(img, _jitter(rng, (230, 190, 150), 25), _jitter(rng, (235, 225, 215), 15))
    if scene == "park":
        _tree_line(img, rng)
    else:
        _buildings(img, rng)


def _ground(img: np.ndarray, dist: float, scene: str, rng: np.random.Generator) -> None:
    """Everything below the horizon; `dist` = px from the horizon to the top row of img."""
    h, w = img.shape[:2]
    base = _jitter(rng, GROUNDS[scene], 20)
    _gradient(img, _jitter(rng, base, 10), base)
    if scene == "park":
        return
    line = _jitter(rng, np.asarray(base) * rng.uniform(0.6, 0.85), 5)
    vx = rng.uniform(0.2, 0.8) * w  # vanishing point x; it lies `dist` px above the top row
    spacing = rng.uniform(0.04, 0.15) * w
    for bx in np.arange(-3 * w, 4 * w, spacing):  # lines converging to the vanishing point
        top_x = vx + (bx - vx) * dist / (dist + h) if dist > 0 else bx
        cv2.line(img, (int(top_x), 0), (int(bx), h), line, 1, cv2.LINE_AA)
    depth = dist + rng.uniform(2, 8)
    while depth < dist + h:  # horizontal joints, closer together towards the horizon
        cv2.line(img, (0, int(depth - dist)), (w, int(depth - dist)), line, 1, cv2.LINE_AA)
        depth *= rng.uniform(1.15, 1.4)
    if scene == "street" and rng.random() < 0.5:
        _crossing(img, dist, vx, rng)


def _crossing(img: np.ndarray, dist: float, vx: float, rng: np.random.Generator) -> None:
    """Zebra stripes on a band of the ground, converging like the rest of it."""
    h, w = img.shape[:2]
    y0, y1 = sorted(rng.uniform(0.2, 1.0, 2) * h)
    stripe = rng.uniform(0.03, 0.08) * w
    colour = _jitter(rng, (215, 215, 215), 10)
    for bx in np.arange(-w, 2 * w, 2 * stripe):
        quad = []
        for y in (y0, y1):
            f = (dist + y) / (dist + h) if dist + h > 0 else 1.0
            quad.append((vx + (bx - vx) * f, y))
            quad.append((vx + (bx + stripe - vx) * f, y))
        pts = np.array([quad[0], quad[1], quad[3], quad[2]], np.int32)
        cv2.fillConvexPoly(img, pts, colour)


def texture_noise(h: int, w: int, rng: np.random.Generator, scale: int, amp: float) -> np.ndarray:
    """(h, w) float32 smooth noise: normal noise on a grid `scale` px apart, upsampled."""
    small = rng.standard_normal((h // scale + 2, w // scale + 2), dtype=np.float32) * amp
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def background(width: int, height: int, horizon: float, rng: np.random.Generator) -> np.ndarray:
    """(height, width, 3) uint8 BGR background for a camera whose horizon is at y = horizon."""
    img = np.empty((height, width, 3), np.uint8)
    scene = SCENES[rng.integers(len(SCENES))]
    hz = int(np.clip(round(horizon + rng.uniform(0.0, 0.03) * height), 0, height))
    if hz > 0:
        _far(img[:hz], scene, rng)
    if hz < height:
        _ground(img[hz:], max(hz - horizon, 1.0), scene, rng)
    noise = texture_noise(height, width, rng, max(8, width // 24), rng.uniform(3, 9))
    noise += texture_noise(height, width, rng, 3, rng.uniform(2, 8) * (scene == "park") + 2)
    return np.clip(img + noise[..., None], 0, 255).astype(np.uint8)
