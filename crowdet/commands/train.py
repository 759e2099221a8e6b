"""`crowdet train CONFIG [key=value ...] [--out RUN] [--resume [CKPT]]`."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "train a detector from a YAML config"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config, e.g. configs/demo.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.add_argument("--out", type=Path, help="run folder (default runs/train/<name>-N)")
    p.add_argument(
        "--resume", nargs="?", const="", default=None, metavar="CKPT",
        help="continue a run: from CKPT, or from <--out>/last.pt when no path is given",
    )  # fmt: skip
    p.add_argument("--force", action="store_true", help="resume even if the config changed")


def run(args) -> int:
    from crowdet.config import load_config
    from crowdet.engine.trainer import Trainer, next_run_dir
    from crowdet.errors import CrowdetError

    cfg = load_config(args.config, args.overrides)
    if args.resume is not None and not args.resume and args.out is None:
        raise CrowdetError("--resume without a checkpoint needs --out RUN (the run to continue)")
    run_dir = args.out or next_run_dir(Path("runs/train"), cfg.name)
    trainer = Trainer(cfg, run_dir)
    if args.resume is not None:
        trainer.resume(Path(args.resume) if args.resume else run_dir / "last.pt", args.force)
    metrics = trainer.train()
    if metrics is not None:
        print(f"run folder: {run_dir}")
        print(
            f"CrowdHuman AP {metrics['AP']:.4f}  MR^-2 {metrics['MR']:.4f}  JI {metrics['JI']:.4f}"
        )
    return 0
