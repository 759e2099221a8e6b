"""Things that are not annotated people: occluders (poles, cars, crates, signs, railings, bushes),
person-like distractors (mannequins, lamps and bollards with a round top, coats on racks, trees)
and dense far-away crowd patches drawn straight onto the image (later marked as ignore regions).

Objects are sprites in the units of `draw` (1 = the height of a person at the same depth, foot at
y = 1), so they scale with perspective like the people around them.
"""

from __future__ import annotations

import cv2
import numpy as np

from crowdet.data.synth import draw
from crowdet.data.synth.draw import Sprite
from crowdet.data.synth.person import SKIN_TONES, clothing_colour

WIDTH_PER_HEIGHT = 0.4  # box width / height of a tiny far-away person (arms and legs included)


def _palette(rng: np.random.Generator, n: int = 6, base=None) -> np.ndarray:
    pal = np.array([clothing_colour(rng) for _ in range(n)])
    if base is not None:
        pal[1] = base
    return np.clip(pal, 0, 255).astype(np.uint8)


def _pole(rng):
    r = rng.uniform(0.015, 0.04)
    top = -rng.uniform(0.5, 2.0)
    prims = [draw.rect(1, -r, top, r, 1.0), draw.rect(2, -r * 1.8, 0.93, r * 1.8, 1.0)]
    return prims, _palette(rng, base=rng.choice([60, 90, 140]) + rng.normal(0, 10, 3)), True


def _car(rng):
    side = rng.random() < 0.6
    half = rng.uniform(1.2, 1.45) if side else rng.uniform(0.5, 0.62)
    roof = 1.0 - rng.uniform(0.78, 0.9)
    body = [draw.rect(1, -half, 0.45, half, 0.9)]
    cab = 0.6 * half if side else 0.85 * half
    body.append(draw.poly(1, [(-cab, 0.46), (cab, 0.46), (cab * 0.8, roof), (-cab * 0.75, roof)]))
    body.append(
        draw.poly(
            2,
            [
                (-cab * 0.85, 0.45),
                (cab * 0.85, 0.45),
                (cab * 0.72, roof + 0.03),
                (-cab * 0.68, roof + 0.03),
            ],
        )
    )
    wheels = (-0.65 * half, 0.65 * half) if side else (-0.8 * half, 0.8 * half)
    body += [draw.ellipse(3, x, 0.88, 0.12, 0.12) for x in wheels]
    if not side:
        body += [draw.ellipse(4, s * 0.75 * half, 0.6, 0.06, 0.03) for s in (-1, 1)]
    pal = _palette(rng)
    pal[2], pal[3], pal[4] = (60, 50, 40), (20, 20, 20), (200, 230, 240)
    return body, pal, False


def _crates(rng):
    prims, y = [], 1.0
    for _ in range(int(rng.integers(1, 4))):
        w, h = rng.uniform(0.2, 0.4), rng.uniform(0.15, 0.3)
        x = rng.uniform(-0.05, 0.05)
        prims.append(draw.rect(1, x - w, y - h, x + w, y))
        prims += [
            draw.rect(2, x - w, yy - 0.008, x + w, yy + 0.008)
            for yy in np.linspace(y - h, y, 4)[1:-1]
        ]
        y -= h
    pal = _palette(rng, base=(60, 110, 150) + rng.normal(0, 20, 3))
    pal[2] = pal[1] * 0.6
    return prims, pal, False


def _sign(rng):
    top = rng.uniform(0.0, 0.4)
    bw, bh = rng.uniform(0.15, 0.4), rng.uniform(0.15, 0.35)
    prims = [draw.rect(1, -0.015, top, 0.015, 1.0)]
    if rng.random() < 0.5:
        prims.append(draw.rect(2, -bw, top - bh, bw, top + 0.02))
        prims.append(draw.rect(3, -bw * 0.8, top - bh * 0.6, bw * 0.8, top - bh * 0.4))
    else:
        prims += [
            draw.ellipse(2, 0, top - bh / 2, bh / 2, bh / 2),
            draw.ellipse(3, 0, top - bh / 2, bh / 3, bh / 3),
        ]
    return prims, _palette(rng, base=(120, 120, 120)), False


def _railing(rng):
    length = rng.uniform(1.0, 4.0)
    h = rng.uniform(0.5, 0.65)
    prims = [
        draw.rect(1, -length / 2, 1 - h, length / 2, 1 - h + 0.025),
        draw.rect(1, -length / 2, 1 - h / 2, length / 2, 1 - h / 2 + 0.02),
    ]
    prims += [
        draw.rect(1, x - 0.012, 1 - h, x + 0.012, 1.0)
        for x in np.arange(-length / 2, length / 2 + 1e-6, rng.uniform(0.15, 0.5))
    ]
    return prims, _palette(rng, base=rng.choice([40, 120, 180]) + rng.normal(0, 8, 3)), False


def _bush(rng):
    prims = [
        draw.ellipse(
            1 + i % 2,
            rng.uniform(-0.35, 0.35),
            rng.uniform(0.6, 0.85),
            rng.uniform(0.12, 0.3),
            rng.uniform(0.1, 0.25),
        )
        for i in range(5)
    ]
    pal = _palette(rng, base=(50, 120, 60) + rng.normal(0, 15, 3))
    pal[2] = pal[1] * 0.75
    return prims, pal, False


def _mannequin(rng):
    """A dress form on a stand: head and torso of a person, no arms, no legs."""
    base = SKIN_TONES[0] if rng.random() < 0.5 else np.full(3, rng.uniform(20, 230))
    prims = [
        draw.rect(3, -0.012, 0.5, 0.012, 0.98),
        draw.ellipse(3, 0, 0.98, 0.1, 0.02),
        draw.poly(2, [(-0.1, 0.18), (0.1, 0.18), (0.08, 0.5), (-0.08, 0.5)]),
        draw.ellipse(1, 0, 0.2, 0.1, 0.03),
        draw.limb(1, (0, 0.1), (0, 0.18), 0.02, 0.025),
        draw.ellipse(1, 0, 0.066, 0.045, 0.062),
    ]
    pal = _palette(rng, base=base)
    if rng.random() < 0.5:
        pal[2] = pal[1]  # undressed
    return prims, pal, True


def _lamp(rng):
    """A tall thin post with a round top (street lamp)."""
    top = -rng.uniform(0.3, 1.3) if rng.random() < 0.6 else rng.uniform(0.0, 0.3)
    r = rng.uniform(0.06, 0.12)
    prims = [draw.rect(1, -0.018, top, 0.018, 1.0), draw.ellipse(2, 0, top - r * 0.8, r, r)]
    pal = _palette(rng, base=(50, 50, 50) + rng.normal(0, 10, 3))
    pal[2] = (215, 235, 245)
    return prims, pal, True


def _bollard(rng):
    """A row of knee-high posts with round tops."""
    prims, x = [], 0.0
    for _ in range(int(rng.integers(1, 5))):
        h, r = rng.uniform(0.35, 0.6), rng.uniform(0.04, 0.07)
        prims += [draw.rect(1, x - r, 1 - h, x + r, 1.0), draw.ellipse(1, x, 1 - h, r, r * 0.9)]
        x += rng.uniform(0.3, 0.7)
    return prims, _palette(rng, base=rng.choice([40, 150]) + rng.normal(0, 10, 3)), True


def _coat_rack(rng):
    """A stand with coats hanging from it: person-sized, person-coloured shapes with no head."""
    prims = [
        draw.rect(1, -0.015, 0.08, 0.015, 1.0),
        draw.ellipse(1, 0, 0.99, 0.12, 0.02),
        draw.rect(1, -0.25, 0.08, 0.25, 0.1),
    ]
    for i, x in enumerate(np.linspace(-0.18, 0.18, int(rng.integers(2, 4)))):
        w, length = rng.uniform(0.07, 0.11), rng.uniform(0.4, 0.6)
        prims.append(
            draw.poly(
                2 + i,
                [
                    (x - w, 0.12),
                    (x + w, 0.12),
                    (x + w * 1.3, 0.1 + length),
                    (x - w * 1.3, 0.1 + length),
                ],
            )
        )
        prims.append(draw.ellipse(2 + i, x, 0.13, w, 0.035))
    return prims, _palette(rng, base=(40, 40, 40)), False


def _tree(rng):
    crown = rng.uniform(0.3, 0.7)
    top = -rng.uniform(0.2, 1.2)
    prims = [
        draw.rect(1, -0.04, top + crown, 0.04, 1.0),
        draw.ellipse(2, 0, top + crown * 0.5, crown * 0.6, crown * 0.7),
    ]
    pal = _palette(rng, base=(40, 70, 100) + rng.normal(0, 10, 3))
    pal[2] = np.clip((50, 120, 60) + rng.normal(0, 20, 3), 0, 255)
    return prims, pal, True


BUILDERS = {
    "pole": _pole,
    "car": _car,
    "crate": _crates,
    "sign": _sign,
    "railing": _railing,
    "bush": _bush,
    "mannequin": _mannequin,
    "lamp": _lamp,
    "coat_rack": _coat_rack,
    "bollard": _bollard,
    "tree": _tree,
}


def render_object(kind: str, ref_height: float, foot, rng: np.random.Generator) -> Sprite:
    """Sprite of an occluder or distractor standing at image point `foot`, sized for a person
    `ref_height` px tall at the same depth."""
    prims, palette, round_look = BUILDERS[kind](rng)
    sprite = draw.render(prims, ref_height, foot, palette)
    if round_look:
        draw.cylinder_shade(sprite, light=rng.uniform(-1, 1), depth=0.3)
    return sprite


def draw_patch(image: np.ndarray, horizon: float, ratio: float, patch, rng) -> np.ndarray | None:
    """Draw one far crowd patch onto `image` (H, W, 3); return its (4,) xyxy box clipped to the
    image, or None when nothing of it is inside."""
    x0, x1, h_lo, h_hi, count = patch
    hs = rng.uniform(h_lo, h_hi, count)
    xs = rng.uniform(x0, x1, count)
    ys = horizon + hs / ratio
    order = np.argsort(ys, kind="stable")
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES), size=count)]
    clothes = rng.uniform(20, 230, (count, 3)) * rng.uniform(0.3, 1.0, (count, 1))
    for i in order:
        x, y, h = xs[i], ys[i], hs[i]
        body = tuple(float(c) for c in clothes[i])
        cv2.rectangle(
            image, (int(x - 0.1 * h), int(y - 0.82 * h)), (int(x + 0.1 * h), int(y)), body, -1
        )
        r = max(1, int(round(0.065 * h)))
        cv2.circle(
            image,
            (int(round(x)), int(round(y - 0.87 * h))),
            r,
            tuple(float(c) for c in skin[i]),
            -1,
        )
    W, H = image.shape[1], image.shape[0]
    half = WIDTH_PER_HEIGHT * hs / 2
    box = np.array([(xs - half).min(), (ys - hs).min(), (xs + half).max(), ys.max()])
    box = np.round(np.clip(box, 0, [W, H, W, H])).astype(np.float32)
    return box if box[2] - box[0] >= 2 and box[3] - box[1] >= 2 else None
