"""A transform that mixes samples (as mosaic and mixup will) is one more transform: it loads other
samples through the dataset's `SampleSource` with the item's seeded generator, so the samples stay
reproducible for a seed, change with the epoch and do not depend on the number of workers."""

from dataclasses import replace

import numpy as np
import torch
from test_dataset import record, write_image

from crowdet.data.collate import collate
from crowdet.data.dataset import CrowdDataset, SampleSource
from crowdet.data.pipeline import run_transforms, train_transforms


class PasteSecond:
    """Puts a second sample, drawn from the source with `rng` and run through `before` with the
    same `rng`, to the right of the first one; every box kind of it moves along."""

    def __init__(self, source: SampleSource, before=()):
        self.source, self.before = source, list(before)

    def __call__(self, sample, rng):
        other = self.source.load(int(rng.integers(len(self.source))))
        other = run_transforms(self.before, other, rng)
        if other.image is None:
            return sample
        (h1, w1), (h2, w2) = sample.image.shape[:2], other.image.shape[:2]
        canvas = np.zeros((max(h1, h2), w1 + w2, 3), np.uint8)
        canvas[:h1, :w1], canvas[:h2, w1:] = sample.image, other.image
        shift = np.array([w1, 0, w1, 0], np.float32)
        boxes = {k: np.concatenate([b, other.boxes[k] + shift]) for k, b in sample.boxes.items()}
        return replace(
            sample,
            image=canvas,
            boxes=boxes,
            ignore=np.concatenate([sample.ignore, other.ignore]),
            head_ignore=np.concatenate([sample.head_ignore, other.head_ignore]),
        )


def two_records(tmp_path):
    write_image(tmp_path / "a.png", 40, 80, seed=0)
    write_image(tmp_path / "b.png", 30, 50, seed=1)
    a = record(tmp_path / "a.png", [[10, 5, 30, 35]], [False], "a", hbox=[[14, 5, 20, 11]])
    b = record(tmp_path / "b.png", [[1, 2, 11, 22], [20, 0, 40, 30]], [False, True], "b")
    b.head_ignore = np.array([True, False])
    return [a, b]


def test_a_pasted_sample_brings_every_box_kind_along(tmp_path):
    source = SampleSource(two_records(tmp_path))
    ds = CrowdDataset(source, [PasteSecond(source)], "full", seed=5)
    other = int(ds.rng(0).integers(2))  # the first draw of item 0's generator
    s = ds[0]
    first, second = source.load(0), source.load(other)
    assert s.image.shape == (40, 80 + second.image.shape[1], 3)
    assert np.array_equal(s.image[: second.image.shape[0], 80:], second.image)
    for kind in ("full", "visible", "head"):
        want = np.concatenate([first.boxes[kind], second.boxes[kind] + [80, 0, 80, 0]])
        np.testing.assert_array_equal(s.boxes[kind], want)
    assert s.ignore.tolist() == [*first.ignore, *second.ignore]
    assert s.head_ignore.tolist() == [*first.head_ignore, *second.head_ignore]


def mixed_set(tmp_path, seed=0):
    records = two_records(tmp_path) * 4
    for i, rec in enumerate(records):
        records[i] = replace(rec, image_id=f"{rec.image_id}{i}")
    source = SampleSource(records)
    augment = train_transforms(64, hflip=0.5, scale=(0.7, 1.3), hsv=(0.015, 0.5, 0.3))
    transforms = [*augment, PasteSecond(source, augment)]
    return CrowdDataset(source, transforms, "full", min_box_size=2.0, seed=seed)


def batches(ds, workers):
    order = [[0, 3, 5], [1, 2, 4, 6, 7]]
    loader = torch.utils.data.DataLoader(
        ds, batch_sampler=order, num_workers=workers, collate_fn=collate
    )
    return list(loader)


def test_mixed_samples_are_seeded_and_worker_proof(tmp_path):
    ds = mixed_set(tmp_path)
    one, two = batches(ds, 0), batches(ds, 2)
    again = batches(mixed_set(tmp_path), 0)
    for a, b, c in zip(one, two, again, strict=True):
        for field in ("images", "image_sizes", "boxes", "valid", "ignore"):
            assert torch.equal(getattr(a, field), getattr(b, field)), field
            assert torch.equal(getattr(a, field), getattr(c, field)), field
    ds.set_epoch(1)
    other_epoch = batches(ds, 0)
    assert any(not torch.equal(a.images, b.images) for a, b in zip(one, other_epoch))
    other_seed = batches(mixed_set(tmp_path, seed=1), 0)
    assert any(not torch.equal(a.boxes, b.boxes) for a, b in zip(one, other_seed))
