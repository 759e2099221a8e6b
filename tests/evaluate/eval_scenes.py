"""Seeded random crowded scenes for the evaluator's tests and benchmark.

People stand in a few clusters (so GT overlap), full-body boxes cross the image border, some
images carry ignore regions (and detections inside them), and detections are noisy copies of GT
(several per person, some exact duplicates) plus false positives, with random scores.
"""

from __future__ import annotations

import numpy as np

from crowdet.data.records import ImageRecord


def _people(rng: np.random.Generator, n: int, width: int, height: int) -> np.ndarray:
    """(n, 4) xyxy full-body boxes in a few clusters, some past the border."""
    centres = rng.uniform([0, 0], [width, height], size=(max(1, n // 6), 2))
    pick = centres[rng.integers(0, len(centres), n)]
    h = rng.uniform(0.08, 0.6, n) * height
    w = h * rng.uniform(0.3, 0.5, n)
    cx = pick[:, 0] + rng.normal(0, 0.06 * width, n)
    cy = pick[:, 1] + rng.normal(0, 0.04 * height, n)
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)


def _visible(rng: np.random.Generator, full: np.ndarray) -> np.ndarray:
    """A visible part inside each full box (top part, random fraction)."""
    frac = rng.uniform(0.1, 1.0, len(full))
    vis = full.copy()
    vis[:, 3] = full[:, 1] + frac * (full[:, 3] - full[:, 1])
    return vis


def _jitter(rng: np.random.Generator, boxes: np.ndarray, scale: float) -> np.ndarray:
    wh = np.repeat(boxes[:, 2:] - boxes[:, :2], 2, axis=0).reshape(-1, 4)
    return boxes + rng.normal(0, scale, boxes.shape) * wh


def random_scene(
    rng: np.random.Generator, image_id: str, people: int, dets: int, ignore: int, kind: str
) -> tuple[ImageRecord, np.ndarray, np.ndarray]:
    """One image: its record (with `ignore` regions) and (boxes (N, 4), scores (N,)) made from
    its boxes of one kind ("full", "visible", "head")."""
    width, height = int(rng.integers(300, 1500)), int(rng.integers(300, 1200))
    full = _people(rng, people, width, height)
    regions = _people(rng, ignore, width, height) * 1.0
    boxes = np.concatenate([full, regions]).astype(np.float32)
    flags = np.r_[np.zeros(people, bool), np.ones(ignore, bool)]
    record = ImageRecord(
        image_id=image_id,
        width=width,
        height=height,
        fbox=boxes,
        vbox=_visible(rng, boxes).astype(np.float32),
        hbox=np.concatenate([boxes[:, :2], boxes[:, :2] + 20], 1).astype(np.float32),
        ignore=flags,
        head_ignore=np.zeros(len(boxes), bool),
        box_ids=np.arange(len(boxes)),
        occ=np.zeros(len(boxes), np.float32),
    )
    sources = record.boxes(kind).astype(np.float64)
    n_copies = min(dets, 3 * len(sources))
    copies = sources[rng.integers(0, len(sources), n_copies)] if n_copies else np.zeros((0, 4))
    noise = rng.choice([0.0, 0.03, 0.1], size=(n_copies, 1))
    copies = _jitter(rng, copies, noise)
    false = _people(rng, dets - n_copies, width, height)
    det_boxes = np.concatenate([copies, false])
    scores = np.concatenate(
        [rng.uniform(0.1, 1.0, n_copies) - 2 * noise[:, 0], rng.uniform(0, 0.8, len(false))]
    )
    if len(det_boxes) > 4:  # exact duplicates and tied scores
        det_boxes[-1] = det_boxes[0]
        scores[-2] = scores[1]
    return record, det_boxes, scores


def random_set(
    num_images: int,
    seed: int = 0,
    people: int = 12,
    dets: int = 40,
    ignore_rate: float = 0.5,
    kind: str = "full",
) -> tuple[list[ImageRecord], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """A set of random scenes; counts vary around `people` and `dets` per image (0 included)."""
    rng = np.random.default_rng(seed)
    records, detections = [], {}
    for i in range(num_images):
        n_people = int(rng.integers(0, 2 * people + 1))
        n_dets = int(rng.integers(0, 2 * dets + 1))
        n_ignore = int(rng.integers(1, 4)) if rng.random() < ignore_rate else 0
        record, boxes, scores = random_scene(rng, f"img{i:05d}", n_people, n_dets, n_ignore, kind)
        records.append(record)
        if rng.random() < 0.95:  # some images have no detection entry at all
            detections[record.image_id] = (boxes, scores)
    return records, detections


def make_record(image_id, boxes, ignore=(), width=100, height=100, vbox=None) -> ImageRecord:
    """A hand-made record: full boxes (N, 4) xyxy, rows listed in `ignore` are ignore regions."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    flags = np.zeros(len(boxes), bool)
    flags[list(ignore)] = True
    return ImageRecord(
        image_id=image_id,
        width=width,
        height=height,
        fbox=boxes,
        vbox=boxes.copy() if vbox is None else np.asarray(vbox, np.float32),
        hbox=np.full_like(boxes, np.nan),
        ignore=flags,
        head_ignore=np.zeros(len(boxes), bool),
    )


def make_dets(boxes, scores) -> tuple[np.ndarray, np.ndarray]:
    """(boxes (N, 4) float64, scores (N,) float64) from lists."""
    return np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64)
