"""Crowd statistics of the synthetic generator: one `SynthPreset` per preset, in `PRESETS`.

Sizes are fractions of the image height, so `--size W H` keeps the look of a preset at another
resolution; counts are per image and do not change with the size. The `crowdhuman` preset is tuned
so that the *annotated* statistics (measured on the written files) match the CrowdHuman paper
(Shao et al. 2018: 22.6 people per image, 2.40 pairs of full boxes per image with IoU > 0.5).
About a quarter of the people placed are hidden by nearer ones (or find no free spot on the ground)
and are not annotated, so `people_mean` is set above the annotated target.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from crowdet.errors import CrowdetError


@dataclass(frozen=True)
class SynthPreset:
    """Every knob of one synthetic dataset. Ranges are (low, high), sampled uniformly per image."""

    # image size in pixels
    width: int = 320
    height: int = 240
    # people placed per image: lognormal around the mean, clipped to the range
    people_mean: float = 20.0
    people_range: tuple[int, int] = (8, 40)
    people_sigma: float = 0.35  # lognormal sigma of the count
    # clustering: probability that a person walks beside an earlier one (same depth, side by side)
    group_prob: float = 0.35
    # overlap: probability that a person stands right behind / in front of an earlier one
    # (sideways offset under one body width): the main source of pairs with IoU > 0.5
    overlap_prob: float = 0.25
    # sizes: full-body height of the smallest annotated person, fraction of image height and
    # absolute floor in pixels; people smaller than this exist only inside ignore patches
    min_height: float = 0.083
    min_height_px: int = 16
    # full-body height of the tallest person, fraction of image height (above 1: cut by the border)
    max_height: tuple[float, float] = (0.55, 1.05)
    # height distribution p(h) ~ h^-power between the smallest and the tallest (1 = log-uniform),
    # except for `fill_share` of the people whose feet are spread evenly over the visible ground
    # (they fill the foreground, as in photos taken inside a crowd)
    height_power: float = 1.0
    fill_share: float = 0.4
    # person height / camera height: 1 = eye level (heads on the horizon), below 1 = from above
    camera_ratio: tuple[float, float] = (0.6, 1.1)
    # foot of the tallest person below the bottom border, in units of its height
    bottom_overflow: tuple[float, float] = (0.0, 0.25)
    # non-person occluders (poles, cars, boxes, signs, railings) and person-like distractors
    occluders: tuple[int, int] = (0, 3)
    distractors: tuple[int, int] = (0, 2)
    # dense far-away crowd patches, annotated as one `mask` ignore box each
    ignore_prob: float = 0.35  # probability of each of up to `ignore_max` patches
    ignore_max: int = 1
    # annotation rules: a person is annotated when this share of its whole (amodal) silhouette
    # is visible; `extra.occ` = 1 when the visible share of its in-frame part is below occ_threshold
    min_visible: float = 0.05
    occ_threshold: float = 0.9
    # photometric effects
    jpeg_quality: tuple[int, int] = (70, 95)
    noise_sigma: tuple[float, float] = (1.0, 6.0)
    blur_prob: float = 0.4
    blur_sigma: tuple[float, float] = (0.4, 1.1)

    def check(self) -> SynthPreset:
        """Raise CrowdetError for settings that cannot produce a dataset; return self."""
        if self.width < 64 or self.height < 64:
            raise CrowdetError(f"image size {self.width}x{self.height} is too small; use >= 64x64")
        lo, hi = self.people_range
        if not 0 <= lo <= hi:
            raise CrowdetError(f"people_range must be 0 <= low <= high, got {self.people_range}")
        if not 0 < self.min_height < self.max_height[0] <= self.max_height[1]:
            raise CrowdetError("need 0 < min_height < max_height[0] <= max_height[1]")
        return self

    def resized(self, width: int, height: int) -> SynthPreset:
        """The same crowd statistics at another image size."""
        return replace(self, width=int(width), height=int(height)).check()

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


PRESETS: dict[str, SynthPreset] = {
    # Small images for the CPU demo: still a crowd (>= 12 annotated people, >= 1 pair IoU > 0.5 per
    # image on average), people from ~20 px to most of the image height, nobody under 16 px
    # annotated outside an ignore patch.
    "demo": SynthPreset(
        width=320,
        height=240,
        people_mean=20.0,
        people_range=(12, 34),
        people_sigma=0.25,
        group_prob=0.35,
        overlap_prob=0.3,
        min_height=0.085,
        min_height_px=16,
        max_height=(0.6, 1.05),
        height_power=0.9,
        camera_ratio=(0.65, 1.1),
        occluders=(0, 2),
        distractors=(0, 2),
        ignore_prob=0.3,
        ignore_max=1,
    ),
    # CrowdHuman-like: 22.6 annotated people and 2.4 pairs with IoU > 0.5 per image, many small
    # people, near people cut by the bottom border, frequent far-crowd ignore regions.
    "crowdhuman": SynthPreset(
        width=1024,
        height=768,
        people_mean=31.0,
        people_range=(4, 90),
        people_sigma=0.45,
        group_prob=0.35,
        overlap_prob=0.27,
        min_height=0.035,
        min_height_px=16,
        max_height=(0.45, 1.3),
        height_power=1.25,
        camera_ratio=(0.5, 1.1),
        bottom_overflow=(0.0, 0.4),
        occluders=(0, 4),
        distractors=(0, 3),
        ignore_prob=0.45,
        ignore_max=2,
    ),
}


def resolve_config(preset: str | SynthPreset, size: tuple[int, int] | None = None) -> SynthPreset:
    """A preset name or a SynthPreset, optionally at another (width, height)."""
    if isinstance(preset, SynthPreset):
        cfg = preset
    elif preset in PRESETS:
        cfg = PRESETS[preset]
    else:
        raise CrowdetError(f"unknown synth preset {preset!r}; choose one of {sorted(PRESETS)}")
    return cfg.resized(*size) if size is not None else cfg.check()
