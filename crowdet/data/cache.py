"""Decoded images kept in memory between epochs (`data.cache: true`, like ultralytics'
`cache=ram`): a small training set is decoded once instead of once per epoch.

Arrays are stored read-only, so a transform that would change a cached image in place fails
loudly instead of corrupting later epochs. Images that do not fit in `max_bytes` are decoded each
time; an unreadable image is never cached (it raises on every read, as without the cache).
"""

from __future__ import annotations

import logging

import numpy as np

from crowdet.data.images import read_image

log = logging.getLogger(__name__)


class ImageCache:
    def __init__(self, max_bytes: int):
        self.max_bytes, self.bytes = max_bytes, 0
        self.images: dict[int, np.ndarray] = {}
        self._full_said = False

    def read(self, index: int, path: str) -> np.ndarray:
        """The decoded image of dataset item `index` (read from `path` the first time)."""
        image = self.images.get(index)
        if image is not None:
            return image
        image = read_image(path)
        if self.bytes + image.nbytes <= self.max_bytes:
            image.flags.writeable = False
            self.images[index] = image
            self.bytes += image.nbytes
        elif not self._full_said:
            self._full_said = True
            log.info(
                "data.cache: %d images (%.0f MB) cached; the others are decoded each time",
                len(self.images), self.bytes / 2**20,
            )  # fmt: skip
        return image
