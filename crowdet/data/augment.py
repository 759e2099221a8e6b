"""The strong augmentations of the one-stage recipes (YOLOv5 / YOLOX), made for crowds.

Each is a transform of the pipeline (`t(sample, rng) -> sample`, crowdet.data.pipeline) applied
with a probability: one draw decides, then only the draws it needs. They move full, visible and
head boxes and ignore regions alike; where they keep only a window of the image or paste people
over others, crowdet.data.cut states what happens to the people (the visible-part rule). Mosaic,
mixup and copy-paste read other samples through the dataset's `SampleSource`, run the
transforms before them on those with the same seeded `rng`, so a sample stays a function of
(seed, epoch, index) whatever the number of workers.

- `Mosaic`: four samples around a random centre, in the size of the first one.
- `MixUp`: another sample blended in (weight ~ Beta(32, 32), as YOLOv5), all rows kept.
- `RandomAffine`: scale, translation, shear and rotation in one warp; boxes re-fitted from their
  four moved corners.
- `RandomCrop`: a window of the image zoomed back to its size; it keeps the crowd: of up to
  CROP_TRIES windows, the first that holds at least half of the people's seen-box centres.
- `CopyPaste`: people of another sample pasted at their place, each as the pixels of its visible
  box; the people under them are occluded (crowdet.data.cut.occlude).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from crowdet.data.cut import cut, join, occlude, seen_boxes, shift
from crowdet.data.pipeline import Transform, run_transforms
from crowdet.data.sample import Sample
from crowdet.data.transforms import affine_boxes, warp_image

FILL = 114  # grey of the pixels no image covers (YOLOv5 / YOLOX)
CROP_TRIES = 10
PASTE_MIN_SIDE = 4  # pixels: smaller visible boxes are not pasted


def _load(source, before: Sequence[Transform], rng: np.random.Generator) -> Sample:
    """Another sample, drawn with `rng` and run through `before` with the same `rng`."""
    return run_transforms(before, source.load(int(rng.integers(len(source)))), rng)


class Mosaic:
    """With probability `p`: the sample and three others (through `before`) as the four tiles
    around a centre drawn in the middle half of the sample's image, each tile cut at the centre
    lines and at the image border; an unreadable tile stays grey."""

    strong = True

    def __init__(self, source, before: Sequence[Transform], p: float, min_visible: float):
        self.source, self.before, self.p, self.min_visible = source, list(before), p, min_visible

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if not rng.random() < self.p:
            return sample
        tiles = [sample, *(_load(self.source, self.before, rng) for _ in range(3))]
        H, W = sample.image.shape[:2]
        cx, cy = (int(v) for v in rng.uniform(0.25, 0.75, 2) * (W, H))
        canvas = np.full((H, W, 3), FILL, np.uint8)
        parts = []
        for k, tile in enumerate(tiles):
            if tile.image is None:
                continue
            h, w = tile.image.shape[:2]
            ox, oy = (cx - w if k in (0, 2) else cx), (cy - h if k in (0, 1) else cy)
            x1, y1 = max(ox, 0), max(oy, 0)
            x2, y2 = min(ox + w, W), min(oy + h, H)
            canvas[y1:y2, x1:x2] = tile.image[y1 - oy : y2 - oy, x1 - ox : x2 - ox]
            parts.append(cut(shift(tile, ox, oy), (x1, y1, x2, y2), self.min_visible))
        return join(parts[0], parts[1:], canvas)  # parts[0]: this sample (it has an image)


class MixUp:
    """With probability `p`: another sample (through `before`) blended in at the top-left
    corner, weight r ~ Beta(32, 32) for this one and 1 - r for the other (grey where it does
    not reach); the rows of both are kept (the other's cut to this image)."""

    strong = True

    def __init__(self, source, before: Sequence[Transform], p: float, min_visible: float):
        self.source, self.before, self.p, self.min_visible = source, list(before), p, min_visible

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if not rng.random() < self.p:
            return sample
        other = _load(self.source, self.before, rng)
        r = rng.beta(32.0, 32.0)
        if other.image is None:
            return sample
        H, W = sample.image.shape[:2]
        h, w = min(other.image.shape[0], H), min(other.image.shape[1], W)
        layer = np.full((H, W, 3), FILL, np.uint8)
        layer[:h, :w] = other.image[:h, :w]
        image = cv2.addWeighted(sample.image, r, layer, 1.0 - r, 0.0)
        return join(sample, [cut(other, (0, 0, w, h), self.min_visible)], image)


def affine_matrix(
    size: tuple[int, int], scale: float, degrees: float, shear: tuple[float, float], move
) -> np.ndarray:
    """2x3 matrix of continuous pixel coordinates: about the centre of a (height, width) image,
    rotate by `degrees` and zoom by `scale`, shear by (x, y) degrees, then move by `move` (x, y)
    fractions of the width and height."""
    h, w = size
    centre = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1]])
    a, s = math.radians(degrees), scale
    cos, sin = s * math.cos(a), s * math.sin(a)
    rotate = np.array([[cos, sin, 0], [-sin, cos, 0], [0, 0, 1]])
    tx, ty = (math.tan(math.radians(v)) for v in shear)
    sheared = np.array([[1, tx, 0], [ty, 1, 0], [0, 0, 1]])
    back = np.array([[1, 0, w / 2 + move[0] * w], [0, 1, h / 2 + move[1] * h], [0, 0, 1]])
    return (back @ sheared @ rotate @ centre)[:2]


class RandomAffine:
    """With probability `p`: one warp of zoom in `scale` (low, high), rotation in +-`degrees`,
    shear in +-`shear` degrees and shift in +-`translate` of the side, into an image of the same
    size (grey outside); boxes re-fitted from their corners, then cut to the image."""

    strong = True

    def __init__(
        self, p, scale=(0.5, 1.5), translate=0.1, degrees=0.0, shear=2.0, min_visible=0.25
    ):
        self.p, self.scale, self.translate = p, tuple(scale), translate
        self.degrees, self.shear, self.min_visible = degrees, shear, min_visible

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if not rng.random() < self.p:
            return sample
        s = rng.uniform(*self.scale)
        angle = rng.uniform(-self.degrees, self.degrees)
        shear = rng.uniform(-self.shear, self.shear, 2)
        move = rng.uniform(-self.translate, self.translate, 2)
        size = sample.image.shape[:2]
        m = affine_matrix(size, s, angle, shear, move)
        moved = sample.evolve(
            image=warp_image(sample.image, m, size, FILL),
            boxes=sample.map_boxes(lambda b: affine_boxes(b, m)),
            scale=sample.scale * s,
        )
        return cut(moved, (0, 0, size[1], size[0]), self.min_visible)


class RandomCrop:
    """With probability `p`: a window whose sides are a fraction in `scale` (low, high) of the
    image's, zoomed back to the image's size; of CROP_TRIES windows drawn at once, the first
    that holds at least half of the people's seen-box centres (none: the sample as it is)."""

    strong = True

    def __init__(self, p: float, scale=(0.5, 1.0), min_visible: float = 0.25):
        self.p, self.scale, self.min_visible = p, tuple(scale), min_visible

    def _window(self, sample: Sample, draws: np.ndarray):
        H, W = sample.image.shape[:2]
        seen = seen_boxes(sample.boxes)[~sample.ignore]
        centres = (seen[:, :2] + seen[:, 2:]) / 2
        for f, u, v in draws:
            w, h = max(1, round(W * f)), max(1, round(H * f))
            x, y = int(u * (W - w + 1)), int(v * (H - h + 1))
            inside = (centres >= (x, y)) & (centres < (x + w, y + h))
            if 2 * inside.all(1).sum() >= len(centres):
                return x, y, x + w, y + h
        return None

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if not rng.random() < self.p:
            return sample
        draws = np.stack([rng.uniform(*self.scale, CROP_TRIES), *rng.random((2, CROP_TRIES))], 1)
        window = self._window(sample, draws)
        if window is None:
            return sample
        x1, y1, x2, y2 = window
        H, W = sample.image.shape[:2]
        kept = shift(cut(sample, window, self.min_visible), -x1, -y1)
        fx, fy = W / (x2 - x1), H / (y2 - y1)
        image = cv2.resize(sample.image[y1:y2, x1:x2], (W, H), interpolation=cv2.INTER_LINEAR)
        factor = np.array([fx, fy, fx, fy], np.float32)
        return kept.evolve(
            image=image, boxes=kept.map_boxes(lambda b: b * factor), scale=sample.scale * fx
        )


class CopyPaste:
    """With probability `p`: 1 to `max_people` people of another sample (through `before`),
    drawn among those whose visible box is at least PASTE_MIN_SIDE pixels a side inside both
    images, pasted at their place as the pixels of their visible box, one after another; each
    occludes the people under it (crowdet.data.cut.occlude) and keeps its own boxes (the full
    box amodal, as annotated), cut to the image."""

    strong = True

    def __init__(self, source, before, p: float, max_people: int = 8, min_visible: float = 0.25):
        self.source, self.before, self.p = source, list(before), p
        self.max_people, self.min_visible = max_people, min_visible

    def _candidates(self, other: Sample, size) -> tuple[np.ndarray, np.ndarray]:
        """(K,) rows of `other` that can be pasted and their (K, 4) integer pixel rects."""
        H, W = size
        vis = other.boxes["visible"]
        h, w = other.image.shape[:2]
        rect = np.stack([np.floor(vis[:, :2]), np.ceil(vis[:, 2:])], 1).reshape(-1, 4)
        rect = np.nan_to_num(rect, nan=-1.0).clip(0, [min(w, W), min(h, H)] * 2)
        big = (rect[:, 2:] - rect[:, :2] >= PASTE_MIN_SIDE).all(1)
        rows = np.flatnonzero(big & ~other.ignore & np.isfinite(vis).all(1))
        return rows, rect[rows].astype(np.int64)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if not rng.random() < self.p:
            return sample
        other = _load(self.source, self.before, rng)
        if other.image is None:
            return sample
        rows, rects = self._candidates(other, sample.image.shape[:2])
        if not len(rows):
            return sample
        n = int(rng.integers(1, min(self.max_people, len(rows)) + 1))
        pick = rng.choice(len(rows), n, replace=False)
        image = sample.image.copy()
        (H, W), (h, w) = image.shape[:2], other.image.shape[:2]
        inside = (0, 0, min(w, W), min(h, H))
        for i in pick:
            x1, y1, x2, y2 = rects[i].tolist()
            image[y1:y2, x1:x2] = other.image[y1:y2, x1:x2]
            sample = occlude(sample, (x1, y1, x2, y2), self.min_visible)
            person = cut(other.take(np.arange(len(other)) == rows[i]), inside, 0.0)
            sample = join(sample, [person], image)
        return sample.evolve(image=image)


def strong_transforms(source, resize: Transform, a) -> list[Transform]:
    """The strong transforms that augment config `a` (crowdet.config.AugmentConfig) turns on, in
    the order mosaic, mixup, copy-paste, crop, affine; the mixing ones read other samples through
    `resize` (and mixup through mosaic too, as YOLOv5 mixes two mosaics)."""
    out: list[Transform] = []
    mosaic = Mosaic(source, [resize], a.mosaic, a.min_visible) if a.mosaic else None
    if mosaic:
        out.append(mosaic)
    if a.mixup:
        out.append(MixUp(source, [resize, *([mosaic] if mosaic else [])], a.mixup, a.min_visible))
    if a.copy_paste:
        out.append(CopyPaste(source, [resize], a.copy_paste, a.copy_paste_max, a.min_visible))
    if a.crop:
        out.append(RandomCrop(a.crop, a.crop_scale, a.min_visible))
    if a.affine:
        out.append(
            RandomAffine(
                a.affine, a.affine_scale, a.affine_translate, a.affine_degrees, a.affine_shear,
                a.min_visible,
            )
        )  # fmt: skip
    return out
