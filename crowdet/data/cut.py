"""What happens to the people of a sample when a transform cuts the image or covers part of it.

The rule (stated in the README, "Augmentation"), applied by every transform that keeps only a
window of the image (mosaic tiles, random crop, the border of a random affine warp) or pastes a
person over others (copy-paste). A person's *seen* box is its visible box, or its full box where
the record has no visible box (its head box where it has neither).

- Every box kind is cut to the window (full boxes too: beyond the window lies another image or
  the grey border); a head box left empty becomes NaN (no head).
- A person whose seen box leaves the window (nothing of it is left) is removed, all kinds.
- A person whose seen box keeps less than `min_visible` of its area becomes an ignore region
  (its boxes stay): a sliver of a person is neither a positive nor a negative.
- An ignore region is cut to the window and removed when nothing of it is left.
- A pasted person occludes the others: their visible (and head) boxes shrink to the box enclosing
  what remains uncovered (strips under a pixel wide do not count); the same two rules then apply
  to the area that remains. Full boxes are amodal and stay.

Training then clips every box to the final image and drops boxes smaller than
data.min_box_size (`crowdet.data.sample.choose_targets`).
"""

from __future__ import annotations

import numpy as np

from crowdet.data.sample import Sample
from crowdet.data.transforms import box_area, box_minus_rect, clip_to_window

PIXEL = 1.0  # what a pasted person leaves of a box in strips thinner than this is not visible


def seen_boxes(boxes: dict[str, np.ndarray]) -> np.ndarray:
    """(N, 4): visible boxes, full boxes where there is no visible box, else head boxes."""
    seen = boxes["visible"]
    for kind in ("full", "head"):
        seen = np.where(np.isnan(seen).any(1, keepdims=True), boxes[kind], seen)
    return seen


def _apply_rule(sample: Sample, boxes: dict, before: np.ndarray, after: np.ndarray, min_visible):
    """Rows whose seen area `after` is gone removed, people under `min_visible` of their seen
    area `before` made ignore regions, empty head boxes made NaN."""
    with np.errstate(invalid="ignore", divide="ignore"):
        kept = np.where(before > 0, after / before, 0.0)
    gone = after <= 0
    weak = ~sample.ignore & ~gone & (kept < min_visible)
    head = boxes["head"]
    head[~(box_area(head) > 0)] = np.nan
    return sample.evolve(boxes=boxes, ignore=sample.ignore | weak).take(~gone)


def cut(sample: Sample, window, min_visible: float) -> Sample:
    """The sample's rows once only the (x1, y1, x2, y2) `window` of its pixels stays (boxes in
    the same coordinates as the window; see the module docstring)."""
    before = box_area(seen_boxes(sample.boxes))
    boxes = sample.map_boxes(lambda b: clip_to_window(b, window))
    return _apply_rule(sample, boxes, before, box_area(seen_boxes(boxes)), min_visible)


def occlude(sample: Sample, rect, min_visible: float) -> Sample:
    """The sample's rows once the (x1, y1, x2, y2) `rect` is covered by a pasted person: the
    area left uncovered (not the area of the box enclosing it) decides."""
    people = ~sample.ignore
    seen = seen_boxes(sample.boxes)
    before = box_area(seen)
    hidden = np.isnan(box_minus_rect(seen, rect, PIXEL)).any(1) & np.isfinite(seen).all(1)
    after = np.where(hidden, 0.0, before - _overlap_area(seen, rect))
    after = np.where(people, after, before)
    boxes = dict(sample.boxes)
    for kind in ("visible", "head"):
        moved = box_minus_rect(sample.boxes[kind], rect, PIXEL)
        boxes[kind] = np.where(people[:, None], moved, sample.boxes[kind])
    return _apply_rule(sample, boxes, before, after, min_visible)


def _overlap_area(boxes: np.ndarray, rect) -> np.ndarray:
    x1, y1, x2, y2 = rect
    w = (np.minimum(boxes[:, 2], x2) - np.maximum(boxes[:, 0], x1)).clip(0)
    h = (np.minimum(boxes[:, 3], y2) - np.maximum(boxes[:, 1], y1)).clip(0)
    return w * h


def shift(sample: Sample, dx: float, dy: float) -> Sample:
    """Every box kind moved by (dx, dy) pixels (the image stays)."""
    offset = np.array([dx, dy, dx, dy], np.float32)
    return sample.evolve(boxes=sample.map_boxes(lambda b: b + offset))


def join(sample: Sample, others: list[Sample], image: np.ndarray) -> Sample:
    """`sample` on `image` with the rows of `others` (already in `image`'s pixels) after its own."""
    parts = [sample, *others]
    boxes = {k: np.concatenate([p.boxes[k] for p in parts]) for k in sample.boxes}
    return sample.evolve(
        image=image,
        boxes=boxes,
        ignore=np.concatenate([p.ignore for p in parts]),
        head_ignore=np.concatenate([p.head_ignore for p in parts]),
    )
