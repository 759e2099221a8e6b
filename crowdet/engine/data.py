"""Datasets and loaders from a config: the synthetic set made on demand, resumable batch order."""

from __future__ import annotations

import logging
import signal
from functools import partial
from pathlib import Path

import torch

from crowdet.config import Config
from crowdet.data.augment import strong_transforms
from crowdet.data.cache import ImageCache
from crowdet.data.collate import collate
from crowdet.data.dataset import CrowdDataset, SampleSource
from crowdet.data.odgt import read_odgt_report
from crowdet.data.pipeline import eval_transforms, resize_transform, train_transforms
from crowdet.data.records import ImageRecord
from crowdet.data.report import ReadReport
from crowdet.engine.faults import check_images
from crowdet.errors import CrowdetError

log = logging.getLogger(__name__)


# data.format -> its usual layout under data.root: (train annotations, val annotations, images);
# used for the keys left at the odgt defaults. "{split}" in the images folder is the split's name
# (CityPersons keeps leftImg8bit/train/<city>/...); None: the reader finds the images itself
# (ECP: labels/ -> img/).
FORMAT_LAYOUTS = {
    "odgt": ("annotation_train.odgt", "annotation_val.odgt", "Images"),
    "coco": ("annotations/train.json", "annotations/val.json", "images"),
    "ecp": ("ECP/day/labels/train", "ECP/day/labels/val", None),
    "citypersons": ("anno_train.mat", "anno_val.mat", "leftImg8bit/{split}"),
    "widerperson": ("train.txt", "val.txt", "Images"),
}
_ODGT_TRAIN, _ODGT_VAL, _ODGT_IMAGES = FORMAT_LAYOUTS["odgt"]


def ann_path(cfg: Config, split: str) -> Path:
    """The split's annotation file (folder for ECP): data.train_ann / val_ann under data.root,
    or the usual one of data.format when the key holds the odgt default."""
    d = cfg.data
    name, default = (d.train_ann, _ODGT_TRAIN) if split == "train" else (d.val_ann, _ODGT_VAL)
    if name == default and d.format != "odgt":
        name = FORMAT_LAYOUTS[d.format][0 if split == "train" else 1]
    p = Path(name)
    return p if p.is_absolute() else Path(d.root) / p


def ensure_dataset(cfg: Config, splits: tuple[str, ...] = ("train", "val")) -> None:
    """Generate the synthetic dataset under data.root when data.synth is set and the folder is
    missing, empty, or an unfinished generation. A user's folder is never written into.
    `splits`: the annotation files needed (evaluation: val only)."""
    root = Path(cfg.data.root)
    if all(ann_path(cfg, split).exists() for split in splits):
        return
    from crowdet.data.synth.generate import MARKER

    ours = not root.exists() or not any(root.iterdir()) or (root / MARKER).exists()
    if cfg.data.synth is None or not ours or cfg.data.format != "odgt":
        names = " / ".join(str(ann_path(cfg, split)) for split in splits)
        fmt = cfg.data.format
        layout = "CrowdHuman layout" if fmt == "odgt" else f"the usual data.format={fmt} layout"
        raise CrowdetError(
            f"data.root={root}: no {names} (set data.root to a dataset in {layout}, or "
            "data.train_ann / data.val_ann)"
        )
    from crowdet.data.synth import generate_dataset

    s = cfg.data.synth
    log.info("data.root=%s does not exist: generating the synthetic '%s' set", root, s.preset)
    generate_dataset(root, s.train, s.val, preset=s.preset, seed=s.seed)


def images_dir(cfg: Config, split: str = "val") -> Path | None:
    """The split's image folder: data.images under data.root ("{split}" replaced), or the usual
    one of data.format when data.images holds the default; None: the reader's own."""
    d = cfg.data
    name = d.images
    if name == _ODGT_IMAGES and d.format != "odgt":
        name = FORMAT_LAYOUTS[d.format][2]
    if name is None:
        return None
    images = Path(name.replace("{split}", split))
    return images if images.is_absolute() else Path(d.root) / images


def read_split(cfg: Config, split: str) -> tuple[list[ImageRecord], ReadReport]:
    """The split's annotations read by data.format's reader (odgt: crowdet.data.odgt)."""
    path, images, strict = ann_path(cfg, split), images_dir(cfg, split), cfg.data.strict
    if cfg.data.format == "odgt":
        return read_odgt_report(path, images_dir=images, strict=strict)
    from crowdet.data.convert import read_annotations

    if not path.exists():
        fmt = cfg.data.format
        raise CrowdetError(f"{path}: no such file (data.{split}_ann, data.format={fmt})")
    return read_annotations(path, cfg.data.format, images, strict)


def load_records_report(cfg: Config, split: str) -> tuple[list[ImageRecord], ReadReport]:
    """The split's records (at most data.max_images) and the ReadReport of its file."""
    path = ann_path(cfg, split)
    records, report = read_split(cfg, split)
    if cfg.data.max_images:
        records = records[: cfg.data.max_images]
        report.found = len(records)
    if not records:
        raise CrowdetError(f"{path}: no usable images")
    return records, report


def load_records(cfg: Config, split: str) -> list[ImageRecord]:
    return load_records_report(cfg, split)[0]


def check_split_images(cfg: Config, split: str, records: list[ImageRecord]) -> dict[str, str]:
    """check_images for one split: {image ID: message} of the images missing on disk."""
    folder = images_dir(cfg, split) or ann_path(cfg, split)
    return check_images(records, ann_path(cfg, split), folder, cfg.data.strict)


def build_dataset(cfg: Config, records: list[ImageRecord], train: bool) -> CrowdDataset:
    """Training: cfg.augment's transforms, targets clipped and the small ones dropped;
    evaluation: the letterbox resize, targets as annotated."""
    a, d = cfg.augment, cfg.data
    cache = ImageCache(d.cache_mb * 2**20) if train and d.cache else None
    source = SampleSource(records, cache=cache, strict=d.strict)
    if not train:
        transforms = eval_transforms(d.input_size, d.resize, d.min_size, d.max_size)
        return CrowdDataset(source, transforms, d.box, seed=cfg.train.seed)
    # with strong augmentation the training resize interpolates linearly (5x faster shrinking
    # than INTER_AREA, as YOLOv5 trains); without, it is the evaluation's resize
    resize = resize_transform(
        d.input_size, d.resize, d.min_size, d.max_size, tuple(a.scale), a.multi_scale,
        fast=a.strong(),
    )  # fmt: skip
    strong = strong_transforms(source, resize, a)
    transforms = train_transforms(d.input_size, a.hflip, a.scale, a.hsv, resize, strong)
    return CrowdDataset(source, transforms, d.box, d.min_box_size, seed=cfg.train.seed)


def strong_until(cfg: Config, max_iters: int) -> int:
    """The first step without the strong augmentation (augment.strong_off_last) in a schedule of
    `max_iters` steps (max_iters when it stays on)."""
    off = cfg.augment.strong_off_last
    last = round(off * max_iters) if off < 1 else int(off)
    return max(0, max_iters - last)


def epoch_batches(
    n: int, batch_size: int, epoch: int, seed: int, rank: int = 0, world: int = 1
) -> list[list[int]]:
    """This rank's batches of one epoch: a seeded permutation, padded so every rank has as many
    full batches (indices repeat when the set is smaller than world * batch_size)."""
    g = torch.Generator().manual_seed(seed * 100003 + epoch)
    perm = torch.randperm(n, generator=g).tolist()
    per_step = batch_size * world
    steps = max(1, n // per_step)
    total = steps * per_step
    perm = (perm * (total // n + 1))[:total]
    mine = perm[rank::world]
    return [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]


def position_for_world(batch_in_epoch: int, old_world: int, new_world: int) -> int:
    """Batch index in an epoch for `new_world` ranks after `batch_in_epoch` batches with
    `old_world` ranks (same per-rank batch): one step consumes a contiguous chunk of the epoch's
    permutation, so the images already seen are kept out, up to one partial step."""
    return batch_in_epoch * old_world // new_world


def resume_position(batch_in_epoch: int, old_world: int, new_world: int) -> int:
    """Where a resumed run starts in the epoch; exact when the number of processes is unchanged."""
    if old_world == new_world:
        return batch_in_epoch
    log.warning(
        "resuming a %d-process run with %d processes: the batch order continues approximately "
        "(an exact resume needs the same number of processes)", old_world, new_world
    )  # fmt: skip
    return position_for_world(batch_in_epoch, old_world, new_world)


def _quiet_worker(worker_id: int) -> None:
    # Ctrl-C, `timeout` and batch schedulers signal the whole process group: data workers leave the
    # stop to the training process, which finishes the step and saves, instead of dying under the
    # loader. A worker still ends with its parent (the loader's watchdog) or on SIGKILL.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def make_loader(dataset, batches, workers: int, size_divisor: int, seed: int = 0):
    """A DataLoader over precomputed batches; its own generator leaves the global RNG alone."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=partial(collate, size_divisor=size_divisor),
        persistent_workers=False,
        worker_init_fn=_quiet_worker if workers else None,
        generator=torch.Generator().manual_seed(seed),
    )


def eval_loader(cfg: Config, dataset, rank: int = 0, world: int = 1):
    idx = list(range(rank, len(dataset), world))
    bs = cfg.eval.batch_size
    batches = [idx[i : i + bs] for i in range(0, len(idx), bs)]
    return make_loader(dataset, batches, cfg.data.workers, cfg.data.size_divisor)
