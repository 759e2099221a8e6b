"""`crowdet eval CONFIG --checkpoint CKPT [key=value ...] [--out DIR]`."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "evaluate a trained model on its config's validation set"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config (its data.* names the validation set)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.add_argument("--checkpoint", required=True, type=Path, help="a .pt written by training")
    p.add_argument("--out", type=Path, default=Path("runs/eval"), help="output folder")


def run(args) -> int:
    from crowdet.config import load_config
    from crowdet.engine import data as D
    from crowdet.engine.checkpoint import load_checkpoint
    from crowdet.engine.model_eval import evaluate_model
    from crowdet.engine.trainer import resolve_device
    from crowdet.engine.weights import load_weights
    from crowdet.evaluate import format_table, write_results
    from crowdet.models.build import build_detector

    cfg = load_config(args.config, args.overrides)
    state = load_checkpoint(args.checkpoint)
    device = resolve_device(cfg.train.device)
    model = build_detector(cfg)
    load_weights(model, state, args.checkpoint, cfg)
    model.to(device)
    D.ensure_dataset(cfg)
    records = D.load_records(cfg, "val")
    D.check_split_images(cfg, "val", records)  # none readable: an error, not empty metrics
    loader = D.eval_loader(cfg, D.build_dataset(cfg, records, train=False))
    box = cfg.eval.box or cfg.data.box
    result, _ = evaluate_model(model, loader, records, device, box, cfg.eval.coco, progress=True)
    files = write_results(result, args.out)
    print(format_table(result))
    if result.skipped_images:
        shown = ", ".join(result.skipped_images[:5])
        more = (
            f" and {len(result.skipped_images) - 5} more" if len(result.skipped_images) > 5 else ""
        )
        print(
            f"  {len(result.skipped_images)} unreadable image(s) scored with no detections, "
            f"their people as missed: {shown}{more}"
        )
    for name, path in files.items():
        print(f"{name}: {path}")
    return 0
