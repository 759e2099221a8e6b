"""A padded batch from samples: images as BGR pixel values, targets padded to the largest count.

Images stay uint8 BGR up to the model, which normalises them (crowdet.models.preprocess); the
padding right and below each image is 0 here, and the model sets it to 0 after normalising.
"""

from __future__ import annotations

import torch

from crowdet.data.sample import Sample
from crowdet.structures import Batch


def _skipped(samples: list[Sample]) -> tuple[dict[str, int], list[tuple[str, str, str]]]:
    """{problem kind: count} and (image ID, kind, message) of the samples without an image."""
    counts: dict[str, int] = {}
    listed = []
    for s in samples:
        if s.image is None:
            counts[s.problem] = counts.get(s.problem, 0) + 1
            listed.append((s.image_id, s.problem, s.reason))
    return counts, listed


def collate(samples: list[Sample], size_divisor: int = 32) -> Batch:
    """Pad images to a multiple of size_divisor and annotations (each sample's `targets()`) to
    the largest count; samples whose image could not be read are dropped and counted."""
    skipped, skipped_images = _skipped(samples)
    samples = [s for s in samples if s.image is not None]
    n = len(samples)
    sizes = [s.image.shape[:2] for s in samples]
    H = -(-max([h for h, _ in sizes], default=size_divisor) // size_divisor) * size_divisor
    W = -(-max([w for _, w in sizes], default=size_divisor) // size_divisor) * size_divisor
    targets = [s.targets() for s in samples]
    G = max([len(b) for b, _ in targets], default=0)
    images = torch.zeros(n, 3, H, W, dtype=torch.uint8)
    pixels = images.numpy()  # a view: filled without copying the (maybe read-only) image twice
    boxes = torch.zeros(n, G, 4)
    valid = torch.zeros(n, G, dtype=torch.bool)
    ignore = torch.zeros(n, G, dtype=torch.bool)
    visible, visible_valid = _visible(samples, G)
    for i, (s, (b, ign)) in enumerate(zip(samples, targets)):
        h, w = s.image.shape[:2]
        pixels[i, :, :h, :w] = s.image.transpose(2, 0, 1)
        boxes[i, : len(b)] = torch.from_numpy(b)
        valid[i, : len(b)] = True
        ignore[i, : len(b)] = torch.from_numpy(ign)
    return Batch(
        images=images,
        image_sizes=torch.tensor(sizes, dtype=torch.int64).view(n, 2),
        boxes=boxes,
        valid=valid,
        ignore=ignore,
        scales=torch.tensor([s.scale for s in samples], dtype=torch.float32),
        orig_sizes=torch.tensor([s.orig_size for s in samples], dtype=torch.int64).view(n, 2),
        image_ids=[s.image_id for s in samples],
        skipped=skipped,
        skipped_images=skipped_images,
        visible=visible,
        visible_valid=visible_valid,
    )


def _visible(samples: list[Sample], G: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, G, 4) the visible box of each target row (0 where there is none) and (B, G) bool
    where it is usable: finite with a positive width and height."""
    visible = torch.zeros(len(samples), G, 4)
    usable = torch.zeros(len(samples), G, dtype=torch.bool)
    for i, s in enumerate(samples):
        v = torch.from_numpy(s.boxes["visible"]).float()
        ok = torch.isfinite(v).all(1) & (v[:, 2:] > v[:, :2]).all(1)
        visible[i, : len(v)] = torch.where(ok[:, None], v, 0.0)
        usable[i, : len(v)] = ok
    return visible, usable
