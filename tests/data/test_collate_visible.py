"""collate carries each target row's visible box and whether it is usable."""

from __future__ import annotations

import numpy as np
import torch

from crowdet.data.collate import collate
from crowdet.data.sample import Sample


def sample(full, visible, kind="full"):
    n = len(full)
    boxes = {
        "full": np.asarray(full, np.float32).reshape(-1, 4),
        "visible": np.asarray(visible, np.float32).reshape(-1, 4),
        "head": np.full((n, 4), np.nan, np.float32),
    }
    image = np.zeros((40, 60, 3), np.uint8)
    return Sample(image, "x", boxes, np.zeros(n, bool), np.zeros(n, bool), kind=kind)


def test_visible_boxes_are_row_aligned_with_a_usable_mask():
    nan = [np.nan] * 4
    a = sample([[0, 0, 10, 20], [5, 5, 15, 25], [1, 1, 9, 9]], [[0, 0, 10, 8], nan, [3, 3, 3, 9]])
    b = sample([[2, 2, 12, 22]], [[2, 2, 12, 10]])
    batch = collate([a, b])
    assert batch.visible.shape == (2, 3, 4) and batch.visible_valid.shape == (2, 3)
    # a NaN box and a zero-width box are not usable; padding rows neither
    assert batch.visible_valid.tolist() == [[True, False, False], [True, False, False]]
    assert batch.visible[0, 0].tolist() == [0, 0, 10, 8]
    assert batch.visible[1, 0].tolist() == [2, 2, 12, 10]
    assert torch.isfinite(batch.visible).all()
    moved = batch.to("cpu")
    assert torch.equal(moved.visible, batch.visible)
    # the trained kind's boxes are unchanged
    assert batch.boxes[0, :3].tolist() == [[0, 0, 10, 20], [5, 5, 15, 25], [1, 1, 9, 9]]
