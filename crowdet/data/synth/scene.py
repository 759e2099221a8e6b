"""Scene layout: a ground-plane camera, where people and objects stand, and in which depth order.

Perspective: every person stands on a flat ground seen by a camera with a level view; a person
`h` px tall has its feet at `y = horizon + h / ratio`, where `ratio` is person height over camera
height (1 = eye level, every head on the horizon; below 1 = seen from above). Depth order is
therefore foot y: larger y is nearer and is drawn later.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from crowdet.data.synth.presets import SynthPreset

OCCLUDERS = ("pole", "car", "crate", "sign", "railing", "bush")
DISTRACTORS = ("mannequin", "lamp", "coat_rack", "bollard", "tree")
WIDTH_PER_HEIGHT = 0.33  # typical full-box width of a person over its height
SPACING = 0.3  # closest two people stand on the ground, in person heights (about 0.5 m)
PARTNER_OFFSET = (0.05, 0.9)  # sideways offset of a person behind / in front, in box widths


@dataclass
class Layout:
    """Where everything stands in one image (pixels).

    Attributes:
        people: (N, 3) float64 rows (foot_x, foot_y, height), in placement order.
        objects: (kind, foot_x, foot_y, ref_height) of occluders and distractors; ref_height is the
            height of a person standing at the same depth.
        patches: far-crowd ignore patches as (x0, x1, h_lo, h_hi, count): tiny people with heights
            in [h_lo, h_hi] px standing between x0 and x1.
    """

    width: int
    height: int
    horizon: float
    ratio: float
    min_h: float
    max_h: float
    people: np.ndarray
    objects: list[tuple[str, float, float, float]] = field(default_factory=list)
    patches: list[tuple[float, float, float, float, int]] = field(default_factory=list)

    def foot_y(self, h):
        return self.horizon + np.asarray(h) / self.ratio

    def depth_order(self) -> list[tuple[str, int]]:
        """("person", i) / ("object", j) items sorted far to near (stable)."""
        keys = [(y, 0, i) for i, y in enumerate(self.people[:, 1])]
        keys += [(o[2], 1, j) for j, o in enumerate(self.objects)]
        keys.sort()
        return [("person" if k == 0 else "object", i) for _, k, i in keys]


def min_height(cfg: SynthPreset, height: int) -> float:
    """Full-body height in px of the smallest annotated person at this image height."""
    return max(cfg.min_height * height, float(cfg.min_height_px))


def sample_camera(cfg: SynthPreset, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """(horizon_y, ratio, min_h, max_h) for one image.

    The tallest person (max_h) stands with its feet at the bottom border (or below it, cut off);
    the smallest (min_h) stands at least mostly inside the frame, and ratio stays in the preset's
    camera range where the frame allows it.
    """
    H = cfg.height
    h_min = min_height(cfg, H)
    h_max = max(rng.uniform(*cfg.max_height) * H, 1.5 * h_min)
    y_bottom = H + rng.uniform(*cfg.bottom_overflow) * h_max
    lo_ratio, hi_ratio = cfg.camera_ratio
    # foot y of the smallest person: between "mostly in frame" and what the ratio range allows
    y_lo = max(0.9 * h_min, y_bottom - (h_max - h_min) / lo_ratio)
    y_hi = max(y_lo, y_bottom - (h_max - h_min) / hi_ratio)
    y_small = rng.uniform(y_lo, y_hi)
    ratio = (h_max - h_min) / max(y_bottom - y_small, 1.0)
    horizon = y_small - h_min / ratio
    return horizon, ratio, h_min, h_max


def power_law(rng: np.random.Generator, lo: float, hi: float, power: float, n: int) -> np.ndarray:
    """(n,) samples of p(h) ~ h^-power on [lo, hi] by inverse CDF."""
    u = rng.random(n)
    if abs(power - 1.0) < 1e-6:
        return lo * (hi / lo) ** u
    a, b = lo ** (1 - power), hi ** (1 - power)
    return (a + u * (b - a)) ** (1 / (1 - power))


def _count(cfg: SynthPreset, rng: np.random.Generator) -> int:
    s = cfg.people_sigma
    n = round(cfg.people_mean * np.exp(rng.normal(-s * s / 2, s)))
    return int(np.clip(n, *cfg.people_range))


def place_people(cfg: SynthPreset, lay: Layout, rng: np.random.Generator, n: int) -> np.ndarray:
    """(m, 3) rows (foot_x, foot_y, height), m <= n: free walkers, side-by-side companions of an
    earlier person (groups, queues) and people right behind / in front of an earlier person.

    Placement is on the ground plane, in person heights: depth Z = image height / h (a focal
    length of one image height) and lateral X = (x - width / 2) * Z / image height. Two people never
    stand closer than `SPACING` on the ground, so strongly overlapping boxes come from people at
    different depths, as in real crowds. A person with no free spot after a few tries is dropped.
    """
    H, W = lay.height, lay.width
    heights = power_law(rng, lay.min_h, lay.max_h, cfg.height_power, n)
    fill = rng.random(n) < cfg.fill_share
    heights[fill] = rng.uniform(lay.min_h, lay.max_h, int(fill.sum()))
    z_range = (H / (1.1 * lay.max_h), H / lay.min_h)
    kind = rng.random(n)
    ground = np.full((n, 2), np.nan)  # (Z, X) per placed person
    for i in range(n):
        for _ in range(6):
            z, x = _propose(cfg, ground[:i], kind[i], H / heights[i], z_range, lay, rng)
            if i == 0 or not (np.hypot(ground[:i, 0] - z, ground[:i, 1] - x) < SPACING).any():
                ground[i] = z, x
                break
    ground = ground[np.isfinite(ground[:, 0])]
    size = np.clip(rng.normal(1.0, 0.05, len(ground)), 0.88, 1.12)  # tall and short people
    scale = H / ground[:, 0]  # px per person height at each depth
    h = np.maximum(size * scale, lay.min_h)
    return np.stack([W / 2 + ground[:, 1] * scale, lay.horizon + scale / lay.ratio, h], axis=1)


def _propose(cfg, ground, kind, z_free, z_range, lay, rng) -> tuple[float, float]:
    """A (Z, X) ground spot for the next person given those already placed (see place_people);
    Z stays in z_range (the depths of the smallest and the tallest person)."""
    H, W = lay.height, lay.width
    valid = np.flatnonzero(np.isfinite(ground[:, 0]))
    if len(valid) and kind < cfg.overlap_prob + cfg.group_prob:
        zj, xj = ground[valid[rng.integers(len(valid))]]
        if kind < cfg.overlap_prob:  # behind or in front, boxes overlapping
            z = np.clip(zj + rng.choice((-1, 1)) * rng.uniform(SPACING, 4 * SPACING), *z_range)
            dx = rng.choice((-1, 1)) * rng.uniform(*PARTNER_OFFSET) * WIDTH_PER_HEIGHT
            return z, (xj + dx) * z / zj
        z = np.clip(zj + rng.normal(0, 0.3 * SPACING), *z_range)  # side by side
        return z, xj + rng.choice((-1, 1)) * rng.uniform(1.05, 2.5) * SPACING
    x_px = rng.uniform(-0.08, 1.08) * W
    return z_free, (x_px - W / 2) * z_free / H


def _objects(cfg: SynthPreset, lay: Layout, rng: np.random.Generator) -> list:
    out = []
    for kinds, (lo, hi) in ((OCCLUDERS, cfg.occluders), (DISTRACTORS, cfg.distractors)):
        n = int(rng.integers(lo, hi + 1))
        hs = power_law(rng, lay.min_h * 1.5, lay.max_h, cfg.height_power, n)
        for h in hs:
            kind = kinds[rng.integers(len(kinds))]
            out.append((kind, float(rng.uniform(-0.05, 1.05) * lay.width), float(lay.foot_y(h)), h))
    return out


def _patches(cfg: SynthPreset, lay: Layout, rng: np.random.Generator) -> list:
    """Dense bands of tiny people near the horizon, each later marked as an ignore region."""
    h_hi = 0.85 * lay.min_h
    h_lo = max(3.0, 0.3 * lay.min_h)
    if lay.foot_y(h_hi) < h_hi or h_hi <= h_lo:
        return []  # the horizon is too far above the frame: the far crowd is not visible
    out = []
    for _ in range(cfg.ignore_max):
        if rng.random() >= cfg.ignore_prob:
            continue
        w = rng.uniform(0.12, 0.4) * lay.width
        x0 = rng.uniform(-0.05, 0.95) * lay.width - w / 2
        lo = rng.uniform(h_lo, h_hi * 0.8)
        density = rng.uniform(1.5, 4.0)  # people per body width
        count = int(np.clip(density * w / (WIDTH_PER_HEIGHT * (lo + h_hi) / 2), 6, 200))
        out.append((x0, x0 + w, lo, h_hi, count))
    return out


def sample_layout(cfg: SynthPreset, rng: np.random.Generator) -> Layout:
    """One image's camera, people, objects and ignore patches."""
    horizon, ratio, h_min, h_max = sample_camera(cfg, rng)
    lay = Layout(cfg.width, cfg.height, horizon, ratio, h_min, h_max, np.zeros((0, 3)))
    lay.people = place_people(cfg, lay, rng, _count(cfg, rng))
    lay.objects = _objects(cfg, lay, rng)
    lay.patches = _patches(cfg, lay, rng)
    return lay
