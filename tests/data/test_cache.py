"""data.cache: decoded images kept between epochs give the same samples as reading every time,
stay read-only, respect the memory bound, and never cache an unreadable image."""

import cv2
import numpy as np
import pytest
from test_dataset import record, write_image

from crowdet.data.cache import ImageCache
from crowdet.data.collate import collate
from crowdet.data.dataset import CrowdDataset, SampleSource
from crowdet.data.pipeline import train_transforms
from crowdet.errors import DataError


def dataset(tmp_path, cache=None, n=3):
    recs = []
    for i in range(n):
        write_image(tmp_path / f"{i}.png", 40 + 8 * i, 80, seed=i)
        recs.append(
            record(tmp_path / f"{i}.png", [[10, 5, 30, 35], [2, 2, 60, 38]], [0, 1], f"{i}")
        )
    transforms = train_transforms(96, hflip=0.5, scale=(0.8, 1.2), hsv=(0.015, 0.5, 0.3))
    return CrowdDataset(SampleSource(recs, cache), transforms, min_box_size=2.0, seed=3)


def test_cached_epochs_equal_uncached_ones(tmp_path):
    plain, cached = dataset(tmp_path), dataset(tmp_path, ImageCache(1 << 30))
    for epoch in range(3):
        plain.set_epoch(epoch), cached.set_epoch(epoch)
        a = collate([plain[i] for i in range(3)])
        b = collate([cached[i] for i in range(3)])
        assert a.images.equal(b.images) and a.boxes.equal(b.boxes) and a.ignore.equal(b.ignore)
    assert len(cached.source.cache.images) == 3


def test_cached_images_are_read_only_and_decoded_once(tmp_path, monkeypatch):
    write_image(tmp_path / "a.png")
    cache = ImageCache(1 << 20)
    first = cache.read(0, str(tmp_path / "a.png"))
    (tmp_path / "a.png").unlink()  # a second read would fail: it comes from memory
    assert cache.read(0, str(tmp_path / "a.png")) is first
    with pytest.raises(ValueError):
        first[0, 0, 0] = 1


def test_the_memory_bound_holds_and_the_rest_is_read_each_time(tmp_path):
    one = write_image(tmp_path / "0.png").nbytes
    write_image(tmp_path / "1.png", seed=1)
    cache = ImageCache(one + 1)  # room for one image
    a = cache.read(0, str(tmp_path / "0.png"))
    b = cache.read(1, str(tmp_path / "1.png"))
    assert list(cache.images) == [0] and cache.bytes == one
    assert b.flags.writeable and np.array_equal(b, cv2.imread(str(tmp_path / "1.png")))
    assert a is cache.read(0, "elsewhere")


def test_an_unreadable_image_is_never_cached(tmp_path):
    cache = ImageCache(1 << 20)
    for _ in range(2):
        with pytest.raises(DataError):
            cache.read(0, str(tmp_path / "gone.jpg"))
    assert not cache.images
    recs = [record(tmp_path / "gone.jpg", [[1, 1, 9, 9]], [0], "gone")]
    s = CrowdDataset(SampleSource(recs, cache), train_transforms(64), min_box_size=2.0)[0]
    assert s.image is None and s.problem
