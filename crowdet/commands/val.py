"""`crowdet val CKPT [DATA] [key=value ...] [--out DIR] [--caltech] [--images DIR] [--compile]`.

Evaluates a checkpoint with the config it holds (overrides apply on top): on that config's
validation set, or on DATA, an annotation file (odgt or COCO json; `--format` for the others)
whose images are in `--images`, by default the `Images` folder beside DATA. Writes what
`crowdet eval` writes: DIR/metrics.json, the plots and DIR/detections.odgt.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from crowdet.commands.eval import add_caltech_argument, add_compile_argument

HELP = "evaluate a checkpoint with the config it holds, on its validation set or on DATA"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path, help="a .pt written by training")
    p.add_argument("data", nargs="?", type=Path, metavar="DATA",
                   help="annotations to evaluate on (odgt or COCO json)")  # fmt: skip
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.add_argument("--out", type=Path, default=Path("runs/val"), help="output folder")
    p.add_argument("--images", type=Path, help="image folder of DATA (default DATA's Images/)")
    p.add_argument(
        "--format", choices=("odgt", "coco", "ecp", "citypersons", "widerperson"),
        help="the format of DATA (default: from its name)",
    )  # fmt: skip
    add_caltech_argument(p)
    add_compile_argument(p)


def run(args) -> int:
    from crowdet.commands.eval import evaluate_checkpoint
    from crowdet.engine.checkpoint import load_checkpoint
    from crowdet.engine.weights import checkpoint_config, with_overrides

    data, overrides = args.data, list(args.overrides)
    if data is not None and "=" in str(data):  # `crowdet val CKPT key=value`: no DATA
        data, overrides = None, [str(data), *overrides]
    state = load_checkpoint(args.checkpoint)
    cfg = with_overrides(checkpoint_config(state, args.checkpoint), overrides, args.checkpoint)
    if data is not None:
        cfg = with_overrides(cfg, data_overrides(data, args.images, args.format), "DATA")
    return evaluate_checkpoint(cfg, state, args.checkpoint, args.out, args.caltech, args.compile)


def data_overrides(data: Path, images: Path | None, fmt: str | None) -> list[str]:
    """The data.* overrides that make DATA the validation set."""
    from crowdet.data.convert import resolve_format
    from crowdet.errors import CrowdetError

    if not data.exists():
        raise CrowdetError(f"DATA {data}: no such file or folder")
    fmt = resolve_format(data, fmt)
    images = images if images is not None else data.resolve().parent / "Images"
    return [
        f"data.format={fmt}",
        f"data.val_ann={data.resolve()}",
        f"data.images={images.resolve()}",
        "data.synth=null",
        "data.max_images=0",
    ]
