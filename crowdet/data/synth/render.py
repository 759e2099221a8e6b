"""One synthetic image: background, far crowd patches, people and objects far to near, then the
boxes measured on the final pixel ownership map, then lighting, blur and noise.

Box rules (pixels, xyxy, integers):
- fbox: bounding box of the person's whole drawn silhouette, including parts hidden by nearer
  things or outside the frame (it may extend past the border).
- vbox: bounding box of the pixels the person still owns in the final image.
- hbox: bounding box of the whole drawn head (hair and hat included).
- A person is annotated when at least `min_visible` of its whole silhouette is visible.
- extra.occ = 1 when the visible share of the in-frame silhouette is below `occ_threshold`
  (being cut by the border is not occlusion, as in CrowdHuman); head_attr.occ likewise for the
  head; head_attr.ignore = 1 when less than half of the head is inside the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from crowdet.data.synth.background import background
from crowdet.data.synth.clutter import draw_patch, render_object
from crowdet.data.synth.draw import paste
from crowdet.data.synth.person import HEAD_PARTS, render_person
from crowdet.data.synth.presets import SynthPreset
from crowdet.data.synth.scene import sample_layout

_IS_HEAD = np.zeros(256, bool)
_IS_HEAD[list(HEAD_PARTS)] = True


@dataclass
class Scene:
    """A rendered image and its annotations.

    Attributes:
        image: (H, W, 3) uint8 BGR.
        fbox, vbox, hbox: (N, 4) float32 xyxy of the annotated people, far to near.
        occ, head_occ, head_ignore: (N,) bool flags (see module docstring).
        visible: (N,) float32 visible share of each person's in-frame silhouette.
        ignore: (M, 4) float32 xyxy ignore regions (far crowd patches).
        jpeg_quality: quality to encode the image with.
    """

    image: np.ndarray
    fbox: np.ndarray
    vbox: np.ndarray
    hbox: np.ndarray
    occ: np.ndarray
    head_occ: np.ndarray
    head_ignore: np.ndarray
    visible: np.ndarray
    ignore: np.ndarray
    jpeg_quality: int


def _shadow(image: np.ndarray, x: float, y: float, h: float, strength: float) -> None:
    """Darken an ellipse of ground under a person's feet."""
    rx, ry = max(int(0.2 * h), 1), max(int(0.03 * h), 1)
    H, W = image.shape[:2]
    x0, x1 = max(int(x) - rx, 0), min(int(x) + rx + 1, W)
    y0, y1 = max(int(y) - ry, 0), min(int(y) + ry + 1, H)
    if x0 >= x1 or y0 >= y1:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.ellipse(mask, (int(x) - x0, int(y) - y0), (rx, ry), 0, 0, 360, 1, -1)
    roi = image[y0:y1, x0:x1]
    roi[mask > 0] = (roi[mask > 0] * strength).astype(np.uint8)


def _people_stats(sprite, H: int, W: int) -> list:
    """[fbox, hbox, whole px, in-frame px, head px, in-frame head px] of a drawn person."""
    fbox, full = sprite.bbox()
    hbox, head = sprite.bbox(HEAD_PARTS)
    win = sprite.window(H, W)
    inside, head_inside = 0, 0
    if win is not None:
        sub = sprite.parts[win[0], win[1]]
        inside, head_inside = int((sub > 0).sum()), int(_IS_HEAD[sub].sum())
    if head == 0:  # a head too small to draw: take the top of the body
        hbox = np.array([fbox[0], fbox[1], fbox[2], fbox[1] + (fbox[3] - fbox[1]) / 8], np.float32)
    return [fbox, hbox, full, inside, head, head_inside]


def _draw_all(cfg: SynthPreset, rng: np.random.Generator):
    lay = sample_layout(cfg, rng)
    H, W = cfg.height, cfg.width
    image = background(W, H, lay.horizon, rng)
    ignore = [draw_patch(image, lay.horizon, lay.ratio, p, rng) for p in lay.patches]
    owner = np.zeros((H, W), np.int32)
    partmap = np.zeros((H, W), np.uint8)
    people = []
    for kind, i in lay.depth_order():
        if kind == "person":
            x, y, h = lay.people[i]
            _shadow(image, x, y, h, rng.uniform(0.55, 0.85))
            sprite = render_person(h, (x, y), rng)
            people.append(_people_stats(sprite, H, W))
            paste(image, owner, partmap, sprite, len(people))
        else:
            name, x, y, h = lay.objects[i]
            paste(image, owner, partmap, render_object(name, h, (x, y), rng), 0)
    ignore = np.array([b for b in ignore if b is not None], np.float32).reshape(-1, 4)
    return image, owner, partmap, people, ignore


def _measure(cfg: SynthPreset, owner, partmap, people) -> dict[str, np.ndarray]:
    """Boxes and flags of the annotated people from the final ownership map (vectorised)."""
    n = len(people)
    if n == 0:
        return (
            {k: np.zeros((0, 4), np.float32) for k in ("fbox", "vbox", "hbox")}
            | {k: np.zeros(0, bool) for k in ("occ", "head_occ", "head_ignore")}
            | {"visible": np.zeros(0, np.float32)}
        )
    fbox = np.stack([p[0] for p in people])
    hbox = np.stack([p[1] for p in people])
    full, inside, head, head_in = (
        np.array([p[k] for p in people], np.float64) for k in (2, 3, 4, 5)
    )
    seen = np.bincount(owner.ravel(), minlength=n + 1)[1:]
    head_seen = np.bincount(owner[_IS_HEAD[partmap]], minlength=n + 1)[1:]
    vbox = np.zeros((n, 4), np.float32)
    for i, sl in enumerate(ndimage.find_objects(owner, max_label=n)):
        if sl is not None:
            vbox[i] = (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
    visible = seen / np.maximum(inside, 1)
    keep = (seen > 0) & (seen >= cfg.min_visible * full)
    return {
        "fbox": fbox[keep],
        "vbox": vbox[keep],
        "hbox": hbox[keep],
        "occ": (visible < cfg.occ_threshold)[keep],
        "head_occ": (head_seen < cfg.occ_threshold * np.maximum(head_in, 1))[keep],
        "head_ignore": (head_in < 0.5 * head)[keep],
        "visible": visible[keep].astype(np.float32),
    }


def photometric(image: np.ndarray, cfg: SynthPreset, rng: np.random.Generator) -> np.ndarray:
    """Uneven lighting, optional blur, sensor noise, colour cast and gamma; (H, W, 3) uint8."""
    H, W = image.shape[:2]
    light = rng.uniform(0.75, 1.2, (3, 3)).astype(np.float32)
    gain = cv2.resize(light, (W, H), interpolation=cv2.INTER_LINEAR)
    f = cv2.multiply(image, cv2.merge([gain, gain, gain]), dtype=cv2.CV_32F)
    if rng.random() < cfg.blur_prob:
        f = cv2.GaussianBlur(f, (0, 0), rng.uniform(*cfg.blur_sigma))
    # luminance noise (the same on the three channels), uniform with the sampled std
    amp = rng.uniform(*cfg.noise_sigma) * np.sqrt(12.0)
    noise = (rng.random((H, W), dtype=np.float32) - 0.5) * np.float32(amp)
    f = cv2.add(f, cv2.merge([noise, noise, noise]))
    out = cv2.convertScaleAbs(f)  # round and saturate to uint8
    cast = rng.uniform(0.9, 1.1, 3)
    gamma = rng.uniform(0.75, 1.3)
    levels = np.arange(256, dtype=np.float64)[:, None] * cast[None, :] / 255.0
    lut = np.clip(255.0 * levels**gamma, 0, 255).astype(np.uint8).reshape(256, 1, 3)
    return cv2.LUT(out, lut)


def render_scene(cfg: SynthPreset, rng: np.random.Generator) -> Scene:
    """Render one image of `cfg.width` x `cfg.height` with all its annotations."""
    image, owner, partmap, people, ignore = _draw_all(cfg, rng)
    ann = _measure(cfg, owner, partmap, people)
    image = photometric(image, cfg, rng)
    quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
    return Scene(image=image, ignore=ignore, jpeg_quality=quality, **ann)
