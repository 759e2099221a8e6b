"""Inference input: BGR images -> the network-input Batch that evaluation makes of the same images.

The Python API (`crowdet.Detector`) and `crowdet detect` go through `preprocess`; it runs the
evaluation transforms (`pipeline.eval_transforms`) and `collate`, as the validation loader does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from crowdet.data.collate import collate
from crowdet.data.pipeline import eval_transforms, run_transforms
from crowdet.data.sample import Sample
from crowdet.structures import Batch


def preprocess(
    images: Sequence[np.ndarray],
    input_size: int,
    size_divisor: int = 32,
    resize: str = "letterbox",
    min_size: int = 800,
    max_size: int = 1400,
) -> Batch:
    """HxWx3 uint8 BGR images -> a Batch: resized as data.resize says (letterbox: the longer
    side input_size; keep_ratio: the shorter side min_size, the longer at most max_size), padded
    to a multiple of size_divisor, image IDs "0", "1", ...; `Batch.scales` map the network
    input back to each image's pixels."""
    transforms = eval_transforms(input_size, resize, min_size, max_size)
    samples = [Sample.from_image(im, str(i)) for i, im in enumerate(images)]
    return collate([run_transforms(transforms, s, None) for s in samples], size_divisor)
