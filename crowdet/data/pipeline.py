"""The transforms of the data pipeline: `t(sample, rng) -> sample`, in the order cfg.augment lists.

Each transform moves the image and every box kind of a `Sample` alike. `rng` is the dataset
item's generator, seeded by (train.seed, epoch, index) (None at inference, where no transform
draws), so a sample is the same for a seed whatever the number of workers and on resume. A
transform draws from `rng` in a fixed order and only what it needs: the draws of a later
transform do not depend on the image.

A transform that mixes samples (mosaic, mixup) takes the dataset's `SampleSource` in its
constructor: it picks other indices with `rng`, `source.load(j)`s them (decoded, not augmented)
and may run the transforms before it on them with the same `rng`.

A transform with `strong = True` (crowdet.data.augment) is left out while the dataset's strong
augmentation is switched off (`CrowdDataset.set_strong`, augment.strong_off_last).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import cv2
import numpy as np

from crowdet.data.sample import Sample
from crowdet.data.transforms import (
    hflip_boxes,
    hsv_jitter,
    keep_ratio_scale,
    letterbox_scale,
    resize_image,
)

Transform = Callable[[Sample, np.random.Generator | None], Sample]


def _rescaled(sample: Sample, scale: float, fast: bool = False) -> Sample:
    """The sample resized by `scale` (aspect kept), every box kind alike (fast: see
    `resize_image`)."""
    if scale == 1.0:
        return sample
    factor = np.float32(scale)
    return replace(
        sample,
        image=resize_image(sample.image, scale, fast),
        boxes=sample.map_boxes(lambda b: b * factor),
        scale=sample.scale * scale,
    )


def _pick(sizes: Sequence[int], default: int, rng: np.random.Generator | None) -> int:
    """One of `sizes` drawn with `rng` (multi-scale training), `default` without a draw when
    `sizes` is empty."""
    return int(sizes[rng.integers(len(sizes))]) if sizes else default


class Letterbox:
    """Resize so the longer side is `size` pixels (or one of `sizes`, drawn per sample), times a
    random factor drawn from `jitter` (low, high) when given: the scale jitter is part of the one
    resize, so pixels are interpolated once. fast: linear interpolation also when shrinking."""

    def __init__(
        self,
        size: int,
        jitter: tuple[float, float] | None = None,
        sizes: Sequence[int] = (),
        fast: bool = False,
    ):
        self.size, self.jitter, self.sizes, self.fast = size, jitter, list(sizes), fast

    def __call__(self, sample: Sample, rng: np.random.Generator | None) -> Sample:
        size = _pick(self.sizes, self.size, rng)
        scale = letterbox_scale(*sample.image.shape[:2], size)
        if self.jitter is not None:
            scale *= rng.uniform(*self.jitter)
        return _rescaled(sample, scale, self.fast)


class KeepRatio:
    """Resize so the shorter side is `min_size` pixels (or one of `sizes`, drawn per sample) and
    the longer side at most `max_size`, times a random factor drawn from `jitter` when given;
    fast: linear interpolation also when shrinking."""

    def __init__(
        self,
        min_size: int,
        max_size: int,
        jitter: tuple[float, float] | None = None,
        sizes: Sequence[int] = (),
        fast: bool = False,
    ):
        self.min_size, self.max_size, self.jitter = min_size, max_size, jitter
        self.sizes, self.fast = list(sizes), fast

    def __call__(self, sample: Sample, rng: np.random.Generator | None) -> Sample:
        short = _pick(self.sizes, self.min_size, rng)
        scale = keep_ratio_scale(*sample.image.shape[:2], short, self.max_size)
        if self.jitter is not None:
            scale *= rng.uniform(*self.jitter)
        return _rescaled(sample, scale)


class HFlip:
    """Mirror left-right with probability `p` (one draw per sample, also when p is 0)."""

    def __init__(self, p: float):
        self.p = p

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if not rng.random() < self.p:
            return sample
        width = sample.image.shape[1]
        return replace(
            sample,
            image=cv2.flip(sample.image, 1),
            boxes=sample.map_boxes(lambda b: hflip_boxes(b, width)),
        )


class HSV:
    """Random hue / saturation / value gains as in YOLOv5 (all 0: off, no draw); boxes stay."""

    def __init__(self, gains: tuple[float, float, float]):
        self.gains = tuple(gains)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        return replace(sample, image=hsv_jitter(sample.image, self.gains, rng))


def resize_transform(
    input_size: int,
    resize: str = "letterbox",
    min_size: int = 800,
    max_size: int = 1400,
    jitter: tuple[float, float] | None = None,
    sizes: Sequence[int] = (),
    fast: bool = False,
) -> Transform:
    """data.resize: "letterbox" (longer side input_size) or "keep_ratio" (shorter side
    min_size, longer side at most max_size); `sizes`, `jitter` and `fast` for training."""
    if resize == "keep_ratio":
        return KeepRatio(min_size, max_size, jitter, sizes, fast)
    return Letterbox(input_size, jitter, sizes, fast)


def eval_transforms(
    input_size: int, resize: str = "letterbox", min_size: int = 800, max_size: int = 1400
) -> list[Transform]:
    """Evaluation and inference: the resize only (no draw)."""
    return [resize_transform(input_size, resize, min_size, max_size)]


def train_transforms(
    input_size: int,
    hflip: float = 0.0,
    scale: tuple[float, float] = (1.0, 1.0),
    hsv: tuple[float, float, float] = (0.0, 0.0, 0.0),
    resize: Transform | None = None,
    strong: Sequence[Transform] = (),
) -> list[Transform]:
    """Training (cfg.augment): the resize (default: letterbox with scale jitter), the strong
    transforms (crowdet.data.augment), flip, HSV, in this order."""
    resize = resize or Letterbox(input_size, tuple(scale))
    return [resize, *strong, HFlip(hflip), HSV(tuple(hsv))]


def run_transforms(
    transforms: Sequence[Transform], sample: Sample, rng: np.random.Generator | None
) -> Sample:
    """Apply `transforms` in order; a sample whose image could not be read passes untouched."""
    if sample.image is None:
        return sample
    for t in transforms:
        sample = t(sample, rng)
    return sample
