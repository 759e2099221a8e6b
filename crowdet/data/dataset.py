"""Torch dataset over ImageRecords: decode, letterbox, augment, and the padded batch collate.

A sample whose image cannot be read is not a crash and not a grey image: it is dropped from its
batch and counted under its problem kind (`Batch.skipped`), its ID, kind and reason listed in
`Batch.skipped_images`; with `strict=True` it is an error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from crowdet.data import transforms as T
from crowdet.data.cache import ImageCache
from crowdet.data.images import read_image
from crowdet.data.records import ImageRecord
from crowdet.errors import DataError
from crowdet.structures import Batch

log = logging.getLogger(__name__)

# ImageNet statistics in BGR order (images are decoded by cv2)
MEAN_BGR = (103.53, 116.28, 123.675)
STD_BGR = (57.375, 57.12, 58.395)


@dataclass
class Sample:
    image: np.ndarray | None  # HxWx3 uint8 BGR after transforms, None when skipped
    boxes: np.ndarray  # (N, 4) xyxy float32 in network-input pixels
    ignore: np.ndarray  # (N,) bool
    image_id: str
    scale: float
    orig_size: tuple[int, int]  # (height, width)
    problem: str = ""  # kind of data problem when skipped
    reason: str = ""  # the problem's message (names the file) when skipped


class CrowdDataset(torch.utils.data.Dataset):
    """Images and boxes of one kind ("full", "visible", "head") for training or evaluation."""

    def __init__(
        self,
        records: list[ImageRecord],
        box_kind: str = "full",
        input_size: int = 320,
        train: bool = False,
        hflip: float = 0.0,
        scale_range: tuple[float, float] = (1.0, 1.0),
        hsv: tuple[float, float, float] = (0.0, 0.0, 0.0),
        min_box_size: float = 2.0,
        strict: bool = False,
        seed: int = 0,
        cache: ImageCache | None = None,
    ):
        """cache: keeps decoded images between epochs (see data/cache.py)."""
        self.records, self.cache = records, cache
        self.box_kind, self.input_size, self.train = box_kind, input_size, train
        self.hflip, self.scale_range, self.hsv = hflip, scale_range, hsv
        self.min_box_size, self.strict, self.seed = min_box_size, strict, seed
        self.epoch = 0
        check_box_kind(records, box_kind)

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _rng(self, index: int) -> np.random.Generator:
        # augmentation randomness depends on (seed, epoch, index) only: resumable and worker-proof
        return np.random.default_rng((self.seed, self.epoch, index))

    def __getitem__(self, index: int) -> Sample:
        rec = self.records[index]
        try:
            if self.cache is None:
                image = read_image(rec.image_path)
            else:
                image = self.cache.read(index, rec.image_path)
        except DataError as e:
            if self.strict:
                raise
            kind = e.kind or "corrupt"
            return Sample(
                None, _EMPTY_BOXES, _EMPTY_FLAGS, rec.image_id, 1.0, (0, 0), kind, str(e)
            )
        return self.transform(image, rec, self._rng(index))

    def transform(self, image: np.ndarray, rec: ImageRecord, rng: np.random.Generator) -> Sample:
        h, w = image.shape[:2]
        boxes = rec.boxes(self.box_kind).astype(np.float32)
        keep = np.isfinite(boxes).all(1)
        boxes, ignore = boxes[keep], rec.ignore_for(self.box_kind)[keep]
        scale = T.letterbox_scale(h, w, self.input_size)
        if self.train:
            scale *= rng.uniform(*self.scale_range)
        image, boxes = T.resize(image, boxes, scale)
        if self.train:
            if rng.random() < self.hflip:
                image, boxes = T.hflip(image, boxes)
            image = T.hsv_jitter(image, self.hsv, rng)
            boxes, ignore = self._clean(boxes, ignore, *image.shape[:2])
        return Sample(image, boxes, ignore, rec.image_id, scale, (h, w))

    def _clean(self, boxes, ignore, height, width):
        """Clip to the image (full boxes are amodal) and drop boxes too small to learn from."""
        boxes = T.clip_boxes(boxes, height, width)
        wh = boxes[:, 2:] - boxes[:, :2]
        keep = (wh >= self.min_box_size).all(1)
        return boxes[keep], ignore[keep]


_FILE_NAMES = {"full": "fbox", "visible": "vbox", "head": "hbox"}


def check_box_kind(records: list[ImageRecord], box_kind: str) -> None:
    """Warn when people lack a box of `box_kind` (they are left out); DataError when none has
    one (training would see no target at all)."""
    people = lacking = 0
    for rec in records:
        person = ~rec.ignore
        people += int(person.sum())
        lacking += int((person & ~np.isfinite(rec.boxes(box_kind)).all(1)).sum())
    if not lacking:
        return
    name = _FILE_NAMES[box_kind]
    source = next((r.source for r in records if r.source), "")
    if lacking == people:
        raise DataError(
            f"none of the {people} people has a {box_kind} box ({name}); choose another "
            f"data.box, or annotations with {name}",
            source,
        )
    log.warning(
        "%s: %d of %d people have no %s box (%s); they are left out of the %s targets",
        source, lacking, people, box_kind, name, box_kind,
    )  # fmt: skip


_EMPTY_BOXES = np.zeros((0, 4), np.float32)
_EMPTY_FLAGS = np.zeros(0, bool)


def collate(samples: list[Sample], size_divisor: int = 32) -> Batch:
    """Pad images to a multiple of size_divisor and annotations to the largest count."""
    skipped: dict[str, int] = {}
    skipped_images = []
    for s in samples:
        if s.image is None:
            skipped[s.problem] = skipped.get(s.problem, 0) + 1
            skipped_images.append((s.image_id, s.problem, s.reason))
    samples = [s for s in samples if s.image is not None]
    n = len(samples)
    hs = [s.image.shape[0] for s in samples] or [size_divisor]
    ws = [s.image.shape[1] for s in samples] or [size_divisor]
    H = -(-max(hs) // size_divisor) * size_divisor
    W = -(-max(ws) // size_divisor) * size_divisor
    G = max([len(s.boxes) for s in samples], default=0)
    images = torch.zeros(n, 3, H, W)
    boxes = torch.zeros(n, G, 4)
    valid = torch.zeros(n, G, dtype=torch.bool)
    ignore = torch.zeros(n, G, dtype=torch.bool)
    mean = torch.tensor(MEAN_BGR).view(3, 1, 1)
    std = torch.tensor(STD_BGR).view(3, 1, 1)
    for i, s in enumerate(samples):
        h, w = s.image.shape[:2]
        pixels = s.image if s.image.flags.writeable else s.image.copy()  # cached: read-only
        img = torch.from_numpy(pixels).permute(2, 0, 1).float()
        images[i, :, :h, :w] = (img - mean) / std
        g = len(s.boxes)
        boxes[i, :g] = torch.from_numpy(s.boxes)
        valid[i, :g] = True
        ignore[i, :g] = torch.from_numpy(s.ignore)
    return Batch(
        images=images,
        image_sizes=torch.tensor([[s.image.shape[0], s.image.shape[1]] for s in samples]).view(
            n, 2
        ),
        boxes=boxes,
        valid=valid,
        ignore=ignore,
        scales=torch.tensor([s.scale for s in samples], dtype=torch.float32),
        orig_sizes=torch.tensor([s.orig_size for s in samples]).view(n, 2),
        image_ids=[s.image_id for s in samples],
        skipped=skipped,
        skipped_images=skipped_images,
    )
