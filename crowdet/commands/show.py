"""`crowdet show ANN --images DIR --out DIR [--num N]`: pictures of the annotations (full green,
visible blue, head yellow, ignore regions red) or, with `--config CFG --augment`, of training
samples after the config's augmentation (ANN defaults to the config's training set)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "draw annotations (full, visible, head, ignore) or augmented samples to pictures"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from crowdet.commands.convert import add_format_options
    from crowdet.data.formats import READ_FORMATS

    p.add_argument(
        "ann", nargs="?", default=None, help="annotation file or folder (default with --config: "
        "the config's training annotations)"
    )  # fmt: skip
    p.add_argument("--images", default=None, help="images folder (default: the format's layout)")
    p.add_argument("--out", default="runs/show", help="folder for the PNG pictures")
    p.add_argument("--num", type=int, default=16, help="number of images (default 16)")
    p.add_argument("--format", choices=READ_FORMATS, default=None, help="default: from ANN")
    p.add_argument("--config", default=None, help="config whose augmentation --augment applies")
    p.add_argument("--augment", action="store_true", help="draw training samples (needs --config)")
    add_format_options(p)


def _augmented_record(sample):
    """The boxes of an augmented sample, every kind, as a record to draw."""
    import numpy as np

    from crowdet.data.records import ImageRecord

    n = len(sample)
    return ImageRecord(
        image_id=f"{sample.image_id}_augmented",
        fbox=sample.boxes["full"],
        vbox=sample.boxes["visible"],
        hbox=sample.boxes["head"],
        ignore=sample.ignore,
        head_ignore=sample.head_ignore,
        box_ids=np.full(n, -1, np.int64),
        occ=np.full(n, np.nan, np.float32),
    )


def _show_augmented(args, records, out: Path) -> list[Path]:
    from crowdet.config import load_config
    from crowdet.data.show import save_picture
    from crowdet.engine.data import build_dataset, ensure_dataset, load_records

    cfg = load_config(args.config)
    if records is None:
        ensure_dataset(cfg)
        records = load_records(cfg, "train")[: args.num]
    dataset = build_dataset(cfg, records, train=True)
    paths = []
    for i in range(len(dataset)):
        sample = dataset[i]
        if sample.image is None:
            print(f"skipped {sample.image_id}: {sample.problem}")
            continue
        paths.append(save_picture(sample.image, _augmented_record(sample), out, pad=False))
    return paths


def _show_records(records, out: Path) -> list[Path]:
    from crowdet.data.images import read_image
    from crowdet.data.show import save_picture
    from crowdet.errors import DataError

    paths = []
    for rec in records:
        try:
            image = read_image(rec.image_path)
        except DataError as e:
            print(f"skipped {rec.image_id} ({rec.source}:{rec.line}): {e}")
            continue
        paths.append(save_picture(image, rec, out))
    return paths


def run(args) -> int:
    from crowdet.commands.convert import format_options
    from crowdet.data.convert import read_annotations
    from crowdet.errors import CrowdetError

    if args.augment and not args.config:
        raise CrowdetError("--augment needs --config CFG (the augmentation to apply)")
    if args.num < 1:
        raise CrowdetError(f"--num must be at least 1, got {args.num}")
    if args.ann is None and not args.augment:
        raise CrowdetError("give ANN (an annotation file or folder) or --config CFG --augment")
    records = None
    if args.ann is not None:
        opts = format_options(args)
        records, _ = read_annotations(args.ann, args.format, args.images, False, opts)
        records = records[: args.num]
    out = Path(args.out)
    paths = _show_augmented(args, records, out) if args.augment else _show_records(records, out)
    print(f"wrote {len(paths)} picture(s) to {out}")
    return 0 if paths or records == [] else 1
