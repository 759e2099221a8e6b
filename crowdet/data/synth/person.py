"""People: a posed stick-figure body (head, torso, arms, legs) fleshed out with cv2 primitives.

Units: 1 = the person's full height; x = 0 is the body's centre line, y = 0 the top of the head and
y = 1 the sole of the lowest foot (the figure is rescaled so this holds for every pose). The sprite
carries part ids, so the head box and head visibility come from the same drawing as the body.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

from crowdet.data.synth import draw
from crowdet.data.synth.draw import Sprite

# part ids painted into the sprite canvas
FACE, HAIR, HAT, EYE, SKIN, TOP, PATTERN, BOTTOM, SHOES, LONG_HAIR = range(1, 11)
HEAD_PARTS = (FACE, HAIR, HAT, EYE)  # hair falling below the head is not part of the head box
NUM_PARTS = 11

SKIN_TONES = np.array(  # BGR
    [
        [189, 208, 241],
        [160, 190, 230],
        [130, 166, 214],
        [105, 140, 190],
        [75, 105, 150],
        [50, 75, 110],
        [40, 55, 85],
    ],
    np.float64,
)
HAIR_TONES = np.array(
    [[20, 20, 25], [25, 35, 50], [35, 55, 85], [70, 120, 170], [160, 160, 165], [40, 60, 140]],
    np.float64,
)
NEUTRALS = np.array(
    [
        [25, 25, 25],
        [45, 45, 50],
        [90, 90, 95],
        [160, 160, 160],
        [225, 225, 225],
        [80, 45, 30],
        [40, 60, 90],
        [120, 160, 190],
        [60, 80, 60],
        [110, 80, 50],
    ],
    np.float64,
)

# body proportions (units of height)
HEAD_RY, HEAD_RX = 0.064, 0.047
HIP_Y = 0.5
THIGH, SHIN = 0.245, 0.225
UPPER_ARM, FOREARM = 0.18, 0.155


@dataclass
class Pose:
    view: str  # "front", "back" or "side"
    facing: int  # +1 right, -1 left (side view)
    build: float  # shoulder/hip width factor
    stride: float  # leg swing angle (rad), 0 when standing
    arms: tuple[tuple[float, float], tuple[float, float]]  # (upper, forearm) angle per arm


def clothing_colour(rng: np.random.Generator) -> np.ndarray:
    """A clothing colour (BGR): often a neutral, otherwise a random hue."""
    if rng.random() < 0.5:
        return NEUTRALS[rng.integers(len(NEUTRALS))] + rng.normal(0, 8, 3)
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.25, 0.9), rng.uniform(0.25, 0.95))
    return np.array([b, g, r]) * 255


def sample_palette(rng: np.random.Generator) -> np.ndarray:
    """(NUM_PARTS, 3) uint8 BGR colours of one person's parts."""
    pal = np.zeros((NUM_PARTS, 3))
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] + rng.normal(0, 6, 3)
    pal[FACE] = pal[SKIN] = skin
    pal[HAIR] = HAIR_TONES[rng.integers(len(HAIR_TONES))] + rng.normal(0, 6, 3)
    pal[LONG_HAIR] = pal[HAIR]
    pal[HAT] = clothing_colour(rng)
    pal[EYE] = skin * 0.35
    pal[TOP] = clothing_colour(rng)
    pal[PATTERN] = clothing_colour(rng) if rng.random() < 0.5 else pal[TOP] * rng.uniform(0.4, 0.7)
    pal[BOTTOM] = (
        clothing_colour(rng) if rng.random() < 0.6 else [110, 70, 40] + rng.normal(0, 12, 3)
    )
    pal[SHOES] = [30, 30, 30] if rng.random() < 0.7 else clothing_colour(rng)
    return np.clip(pal, 0, 255).astype(np.uint8)


def sample_pose(rng: np.random.Generator) -> Pose:
    view = ("front", "back", "side")[rng.choice(3, p=(0.4, 0.25, 0.35))]
    walking = rng.random() < 0.55
    stride = rng.uniform(0.15, 0.45) if walking else 0.0
    kind = rng.random()
    if view == "side":
        swing = stride * rng.uniform(0.6, 1.0) + rng.uniform(-0.05, 0.1)
        arms = ((swing, swing + rng.uniform(0.1, 0.6)), (-swing, -swing + rng.uniform(0.1, 0.4)))
    elif kind < 0.06:  # hands on hips
        arms = ((0.7, -0.9), (0.7, -0.9))
    elif kind < 0.12 and view == "front":  # arms crossed
        arms = ((0.12, -1.45), (0.1, -1.55))
    elif kind < 0.16:  # one arm raised (waving, pointing)
        arms = ((rng.uniform(1.6, 2.2), rng.uniform(2.4, 2.9)), _relaxed(rng))
    else:
        arms = (_relaxed(rng), _relaxed(rng))
    facing = 1 if rng.random() < 0.5 else -1
    return Pose(view, facing, rng.uniform(0.88, 1.15), stride, arms)


def _relaxed(rng: np.random.Generator) -> tuple[float, float]:
    up = rng.uniform(0.04, 0.3)
    return up, up + rng.uniform(-0.15, 0.35)


def _dir(angle: float, side: float) -> np.ndarray:
    """Unit vector `angle` rad away from straight down, towards `side` (+1 right, -1 left)."""
    return np.array([side * math.sin(angle), math.cos(angle)])


def _legs(pose: Pose, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(hip, knee, ankle) points of the far leg then the near leg."""
    legs = []
    if pose.view == "side":
        f, a = pose.facing, pose.stride
        for thigh, shin in ((-0.8 * a, -1.5 * a), (a, 0.55 * a)):
            hip = np.array([0.0, HIP_Y])
            knee = hip + THIGH * _dir(thigh, f)
            legs.append((hip, knee, knee + SHIN * _dir(shin, f)))
        return legs
    stance = rng.uniform(0.0, 0.05) * pose.build
    lift = rng.uniform(0.0, 0.05) if pose.stride > 0 else 0.0
    for i, side in enumerate((-1, 1)):
        hip = np.array([side * 0.048 * pose.build, HIP_Y])
        ankle = np.array([hip[0] + side * stance, HIP_Y + THIGH + SHIN - (lift if i else 0)])
        knee = (hip + ankle) / 2 + [side * 0.004, 0]
        legs.append((hip, knee, ankle))
    return legs


def _arm_prims(pose, i, sleeve_part, shoulder) -> list:
    upper, fore = pose.arms[i]
    side = pose.facing if pose.view == "side" else (-1, 1)[i]
    elbow = shoulder + UPPER_ARM * _dir(upper, side)
    wrist = elbow + FOREARM * _dir(fore, side)
    return [
        draw.limb(sleeve_part, wrist, elbow, 0.021, 0.026),
        draw.limb(TOP, elbow, shoulder, 0.026, 0.032),
        draw.ellipse(SKIN, *(wrist + _dir(fore, side) * 0.015), 0.022, 0.024),
    ]


def _leg_prims(legs, bottom_shin: int, wide: float) -> list:
    """Shin (part `bottom_shin`) and thigh limbs; `wide` scales their thickness."""
    prims = []
    for hip, knee, ankle in legs:
        prims.append(draw.limb(bottom_shin, knee, ankle, 0.033 * wide, 0.025 * wide))
        prims.append(draw.limb(BOTTOM, hip, knee, 0.045 * wide, 0.034 * wide))
    return prims


def _feet(legs, pose: Pose) -> list:
    prims = []
    for _, knee, ankle in legs:
        if pose.view == "side":
            c = ankle + [0.028 * pose.facing, 0.012]
            ang = math.degrees(math.atan2(ankle[1] - knee[1], ankle[0] - knee[0])) - 90
            prims.append(draw.ellipse(SHOES, c[0], c[1], 0.045, 0.019, ang))
        else:
            prims.append(draw.ellipse(SHOES, ankle[0], ankle[1] + 0.012, 0.03, 0.02))
    return prims


def _torso(pose: Pose, coat: bool) -> list:
    b = pose.build
    sw = (0.05 if pose.view == "side" else 0.112) * b
    hw = (0.065 if pose.view == "side" else 0.085) * b
    bottom_y, bottom_w = (0.74, hw * 1.3) if coat else (0.53, hw)
    pts = [
        (-sw, 0.17),
        (sw, 0.17),
        (sw * 0.95, 0.32),
        (bottom_w, bottom_y),
        (-bottom_w, bottom_y),
        (-sw * 0.95, 0.32),
    ]
    prims = [draw.rect(BOTTOM, -hw, 0.46, hw, 0.57), draw.poly(TOP, pts)]
    if pose.view != "side":
        prims += [draw.ellipse(TOP, s * (sw - 0.02), 0.2, 0.035, 0.032) for s in (-1, 1)]
    return prims


def _head(pose: Pose, rng: np.random.Generator, detailed: bool) -> list:
    f = pose.facing if pose.view == "side" else 0
    hx = 0.012 * f
    rx = HEAD_RX * rng.uniform(0.92, 1.08)
    prims = [draw.limb(SKIN, (hx, 0.1), (0.0, 0.17), 0.022, 0.024)]
    style = rng.random()
    if style < 0.25 and pose.view != "side":  # long hair falling behind the shoulders
        prims.append(draw.rect(LONG_HAIR, hx - rx * 1.1, 0.05, hx + rx * 1.1, 0.2))
    if pose.view == "back":
        prims.append(draw.ellipse(HAIR, hx, HEAD_RY, rx, HEAD_RY))
    else:
        prims.append(draw.ellipse(FACE, hx, HEAD_RY, rx, HEAD_RY))
        if pose.view == "side":
            prims.append(draw.ellipse(HAIR, hx - 0.3 * rx * f, 0.05, rx * 0.8, HEAD_RY * 0.8))
        elif style < 0.9:
            prims.append(draw.ellipse(HAIR, hx, 0.03, rx * 1.05, 0.032))
        if detailed:
            eyes = (0.5 * f,) if pose.view == "side" else (-0.38, 0.38)
            prims += [draw.ellipse(EYE, hx + e * rx, 0.068, 0.007, 0.005) for e in eyes]
    if rng.random() < 0.15:
        prims.append(draw.ellipse(HAT, hx, 0.022, rx * 1.1, 0.03))
        if pose.view == "side":
            prims.append(draw.rect(HAT, hx, 0.035, hx + f * rx * 1.9, 0.045))
    return prims


def person_prims(pose: Pose, rng: np.random.Generator, detailed: bool) -> list:
    """Primitives of one posed person, back to front, in units (see module docstring)."""
    legs = _legs(pose, rng)
    long_sleeves = rng.random() < 0.6
    lower = rng.random()
    shin_part = SKIN if lower < 0.15 else BOTTOM
    coat = lower > 0.82
    skirt = 0.15 <= lower < 0.3
    sleeve = TOP if long_sleeves or coat else SKIN
    sx = 0.0 if pose.view == "side" else 0.112 * pose.build - 0.02
    shoulders = (np.array([-sx, 0.2]), np.array([sx, 0.2]))
    prims: list = []
    far_arm = pose.view == "side"
    if far_arm:
        prims += _arm_prims(pose, 1, sleeve, shoulders[1])
    prims += _leg_prims(legs, SKIN if skirt else shin_part, 0.85 + 0.3 * (pose.build - 0.88))
    prims += _feet(legs, pose)
    if skirt:
        hw = 0.085 * pose.build
        prims.append(
            draw.poly(BOTTOM, [(-hw, 0.47), (hw, 0.47), (hw * 1.8, 0.75), (-hw * 1.8, 0.75)])
        )
    crossed = pose.arms[0][1] < -1.2
    if not crossed:
        prims += _arm_prims(pose, 0, sleeve, shoulders[0])
        if not far_arm:
            prims += _arm_prims(pose, 1, sleeve, shoulders[1])
    prims += _torso(pose, coat)
    if crossed:
        prims += _arm_prims(pose, 0, sleeve, shoulders[0]) + _arm_prims(
            pose, 1, sleeve, shoulders[1]
        )
    elif far_arm:
        prims += _arm_prims(pose, 0, sleeve, shoulders[0])
    prims += _head(pose, rng, detailed)
    return _normalise(prims)


def _normalise(prims: list) -> list:
    """Rescale uniformly (about the head top) so the lowest point of the figure is at y = 1."""
    bottom = max(draw.extent(p)[3] for p in prims)
    s = 1.0 / bottom
    out = []
    for kind, part, p in prims:
        if kind == "poly":
            out.append((kind, part, p * s))
        elif kind == "ellipse":
            out.append((kind, part, (p[0] * s, p[1] * s, p[2] * s, p[3] * s, p[4])))
        else:
            out.append((kind, part, tuple(v * s for v in p)))
    return out


def _texture(sprite: Sprite, height: float, rng: np.random.Generator) -> None:
    """Stripes or checks on the top's pixels (part TOP -> PATTERN)."""
    kind = rng.random()
    if kind < 0.55 or height < 40:
        return
    period = max(2, int(round(height * rng.uniform(0.012, 0.035))))
    h, w = sprite.parts.shape
    rows = (np.arange(h) // period % 2 == 0)[:, None]
    cols = (np.arange(w) // period % 2 == 0)[None, :]
    if kind < 0.75:
        on = np.broadcast_to(rows, (h, w))
    elif kind < 0.88:
        on = np.broadcast_to(cols, (h, w))
    else:
        on = rows ^ cols
    sprite.parts[on & (sprite.parts == TOP)] = PATTERN


def render_person(height: float, foot: tuple[float, float], rng: np.random.Generator) -> Sprite:
    """A person `height` px tall whose feet stand at image point `foot` (x, y)."""
    pose = sample_pose(rng)
    prims = person_prims(pose, rng, detailed=height * HEAD_RX > 6)
    sprite = draw.render(prims, height, foot, sample_palette(rng))
    _texture(sprite, height, rng)
    draw.cylinder_shade(sprite, light=rng.uniform(-1, 1), depth=rng.uniform(0.2, 0.45))
    return sprite
