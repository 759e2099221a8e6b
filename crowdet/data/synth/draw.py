"""Sprites: shapes drawn with cv2 primitives into a small canvas of part ids, then pasted.

Every person and object is described as a list of primitives in *units* (1 unit = the height of a
person standing at the object's depth; x = 0 is the object's centre line, y = 1 its foot). A
primitive paints one part id (uint8, 0 = empty) so one drawing pass gives both the silhouette mask
and, through a per-sprite palette, the colours. Coordinates go to cv2 as fixed point
(`SHIFT` fractional bits) so small people keep sub-pixel shapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

SHIFT = 4
_ONE = 1 << SHIFT

# A primitive: (kind, part, params). kinds: "ellipse" (cx, cy, rx, ry, angle_deg),
# "poly" (points (K, 2)), "limb" (x0, y0, x1, y1, r0, r1), "rect" (x0, y0, x1, y1).
Primitive = tuple


def ellipse(part: int, cx: float, cy: float, rx: float, ry: float, angle: float = 0.0):
    return ("ellipse", part, (cx, cy, rx, ry, angle))


def poly(part: int, points) -> Primitive:
    return ("poly", part, np.asarray(points, np.float64).reshape(-1, 2))


def limb(part: int, p0, p1, r0: float, r1: float) -> Primitive:
    """A tapered capsule from p0 (radius r0) to p1 (radius r1)."""
    return ("limb", part, (p0[0], p0[1], p1[0], p1[1], r0, r1))


def rect(part: int, x0: float, y0: float, x1: float, y1: float) -> Primitive:
    return ("rect", part, (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))


def extent(prim: Primitive) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) bounds of a primitive, in units."""
    kind, _, p = prim
    if kind == "ellipse":
        c, s = math.cos(math.radians(p[4])), math.sin(math.radians(p[4]))
        ex, ey = math.hypot(p[2] * c, p[3] * s), math.hypot(p[2] * s, p[3] * c)
        return p[0] - ex, p[1] - ey, p[0] + ex, p[1] + ey
    if kind == "poly":
        return p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()
    if kind == "limb":
        r = max(p[4], p[5])
        return min(p[0], p[2]) - r, min(p[1], p[3]) - r, max(p[0], p[2]) + r, max(p[1], p[3]) + r
    return p


@dataclass
class Sprite:
    """A drawn object placed in the image.

    Attributes:
        parts: (h, w) uint8 part ids, 0 = empty.
        x0, y0: image position of parts[0, 0] (may be negative or past the border).
        palette: (P, 3) uint8 BGR colour of each part id (row 0 unused).
        shade: (h, w) float32 brightness factor, or None for flat colours.
    """

    parts: np.ndarray
    x0: int
    y0: int
    palette: np.ndarray
    shade: np.ndarray | None = None

    def window(self, height: int, width: int) -> tuple[slice, slice, slice, slice] | None:
        """(sprite rows, sprite cols, image rows, image cols) of the part inside an image of this
        size, or None when the sprite lies wholly outside it."""
        h, w = self.parts.shape
        ix0, iy0 = max(self.x0, 0), max(self.y0, 0)
        ix1, iy1 = min(self.x0 + w, width), min(self.y0 + h, height)
        if ix0 >= ix1 or iy0 >= iy1:
            return None
        return (
            slice(iy0 - self.y0, iy1 - self.y0),
            slice(ix0 - self.x0, ix1 - self.x0),
            slice(iy0, iy1),
            slice(ix0, ix1),
        )

    def bbox(self, ids: tuple[int, ...] | None = None) -> tuple[np.ndarray, int]:
        """(4,) xyxy image box of the pixels whose part is in `ids` (all parts when None), and
        their count; a zero box and 0 when there are none."""
        m = self.parts > 0 if ids is None else np.isin(self.parts, ids)
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        if len(rows) == 0:
            return np.zeros(4, np.float32), 0
        box = [cols[0] + self.x0, rows[0] + self.y0, cols[-1] + 1 + self.x0, rows[-1] + 1 + self.y0]
        return np.array(box, np.float32), int(m.sum())


def render(
    prims: list[Primitive], scale: float, anchor: tuple[float, float], palette: np.ndarray
) -> Sprite:
    """Draw primitives at `scale` px per unit; unit point (0, 1) lands on image point `anchor`."""
    ext = np.array([extent(p) for p in prims])
    ux0, uy0 = ext[:, 0].min(), ext[:, 1].min()
    ux1, uy1 = ext[:, 2].max(), ext[:, 3].max()
    ax, ay = anchor
    x0 = int(np.floor(ax + ux0 * scale)) - 1
    y0 = int(np.floor(ay + (uy0 - 1.0) * scale)) - 1
    w = int(np.ceil(ax + ux1 * scale)) + 2 - x0
    h = int(np.ceil(ay + (uy1 - 1.0) * scale)) + 2 - y0
    canvas = np.zeros((h, w), np.uint8)
    # unit (u, v) -> canvas px: (ax - x0 + u*scale, ay - y0 + (v-1)*scale)
    ox, oy = ax - x0, ay - y0 - scale
    for prim in prims:
        _draw(canvas, prim, scale, ox, oy)
    return Sprite(canvas, x0, y0, palette)


def _fx(v: float) -> int:
    return int(round(v * _ONE))


def _draw(canvas: np.ndarray, prim: Primitive, s: float, ox: float, oy: float) -> None:
    kind, part, p = prim
    if kind == "ellipse":
        c = (_fx(ox + p[0] * s), _fx(oy + p[1] * s))
        axes = (max(_fx(p[2] * s), 1), max(_fx(p[3] * s), 1))
        cv2.ellipse(canvas, c, axes, p[4], 0, 360, part, -1, cv2.LINE_8, SHIFT)
    elif kind == "poly":
        pts = np.round((p * s + (ox, oy)) * _ONE).astype(np.int32)
        cv2.fillPoly(canvas, [pts], part, cv2.LINE_8, SHIFT)
    elif kind == "limb":
        _draw_limb(canvas, part, p, s, ox, oy)
    else:
        pts = np.array([[p[0], p[1]], [p[2], p[1]], [p[2], p[3]], [p[0], p[3]]])
        cv2.fillConvexPoly(
            canvas, np.round((pts * s + (ox, oy)) * _ONE).astype(np.int32), part, cv2.LINE_8, SHIFT
        )


def _draw_limb(canvas, part, p, s, ox, oy) -> None:
    x0, y0, x1, y1, r0, r1 = p
    ax, ay, bx, by = ox + x0 * s, oy + y0 * s, ox + x1 * s, oy + y1 * s
    length = max(math.hypot(bx - ax, by - ay), 1e-9)
    nx, ny = (ay - by) / length * s * _ONE, (bx - ax) / length * s * _ONE
    ax, ay, bx, by = ax * _ONE, ay * _ONE, bx * _ONE, by * _ONE
    quad = np.array(
        [
            [ax + nx * r0, ay + ny * r0],
            [bx + nx * r1, by + ny * r1],
            [bx - nx * r1, by - ny * r1],
            [ax - nx * r0, ay - ny * r0],
        ]
    )
    cv2.fillConvexPoly(canvas, quad.round().astype(np.int32), part, cv2.LINE_8, SHIFT)
    cv2.circle(
        canvas, (int(ax + 0.5), int(ay + 0.5)), max(_fx(r0 * s), 1), part, -1, cv2.LINE_8, SHIFT
    )
    cv2.circle(
        canvas, (int(bx + 0.5), int(by + 0.5)), max(_fx(r1 * s), 1), part, -1, cv2.LINE_8, SHIFT
    )


def paste(
    image: np.ndarray, owner: np.ndarray, partmap: np.ndarray, sprite: Sprite, pid: int
) -> int:
    """Paint a sprite over the image (nearer things are pasted later).

    image (H, W, 3) uint8, owner (H, W) int32 person id per pixel (0 = not a person), partmap
    (H, W) uint8 part id per pixel; all updated in place. Returns the number of pixels painted.
    """
    win = sprite.window(*owner.shape)
    if win is None:
        return 0
    sy, sx, iy, ix = win
    sub = sprite.parts[sy, sx]
    rr, cc = np.nonzero(sub)
    ids = sub[rr, cc]
    colour = sprite.palette[ids]
    if sprite.shade is not None:
        shade = sprite.shade[sy, sx][rr, cc]
        colour = np.minimum(colour * shade[:, None], 255).astype(np.uint8)
    image[iy, ix][rr, cc] = colour
    owner[iy, ix][rr, cc] = pid
    partmap[iy, ix][rr, cc] = ids
    return len(rr)


def cylinder_shade(sprite: Sprite, light: float, depth: float = 0.35) -> None:
    """Give a sprite a round look: darker towards its left/right edges, brighter on the lit side.

    light in [-1, 1] moves the highlight left/right; depth is the edge darkening (0 = flat).
    """
    h, w = sprite.parts.shape
    x = np.linspace(-1.0, 1.0, w, dtype=np.float32)
    cols = 1.0 - depth * x**2 + 0.15 * light * x
    rows = np.linspace(1.05, 0.88, h, dtype=np.float32)
    sprite.shade = rows[:, None] * cols[None, :]
