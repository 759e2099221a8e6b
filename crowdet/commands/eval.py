"""`crowdet eval CONFIG --checkpoint CKPT [key=value ...] [--out DIR] [--caltech] [--compile]`.

Writes DIR/metrics.json, the plots and DIR/detections.odgt (CrowdHuman result lines).
`crowdet val CKPT` does the same with the config the checkpoint holds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "evaluate a trained model on its config's validation set"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config (its data.* names the validation set)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.add_argument("--checkpoint", required=True, type=Path, help="a .pt written by training")
    p.add_argument("--out", type=Path, default=Path("runs/eval"), help="output folder")
    add_caltech_argument(p)
    add_compile_argument(p)


def add_compile_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--compile", action="store_true",
        help="torch.compile the network with frozen weights: a slow first batch (60-110 s for "
        "ResNet-50 on 2 CPU cores) and one or two more at new sizes, then faster; for large "
        "sets or video",
    )  # fmt: skip


def add_caltech_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--caltech", action="store_true",
        help="also the Caltech/CityPersons MR^-2 setups (Reasonable, Small, Heavy, All); "
        "the same as eval.caltech=true",
    )  # fmt: skip


def run(args) -> int:
    from crowdet.config import load_config
    from crowdet.engine.checkpoint import load_checkpoint

    cfg = load_config(args.config, args.overrides)
    state = load_checkpoint(args.checkpoint)
    return evaluate_checkpoint(cfg, state, args.checkpoint, args.out, args.caltech, args.compile)


def evaluate_checkpoint(
    cfg, state: dict, checkpoint: Path, out: Path, caltech: bool, compile: bool = False
) -> int:
    """Build the model of `cfg`, load the checkpoint's weights, score it on cfg's val set and
    write metrics.json, plots and detections.odgt into `out`; print the table. compile:
    `DenseDetector.compile_for_inference` first."""
    from crowdet.engine import data as D
    from crowdet.engine.model_eval import evaluate_model
    from crowdet.engine.trainer import resolve_device
    from crowdet.engine.weights import load_weights
    from crowdet.evaluate import format_table, write_results
    from crowdet.evaluate.detfile import write_crowdhuman_dets
    from crowdet.models.build import build_detector

    cfg.eval.caltech = cfg.eval.caltech or caltech
    device = resolve_device(cfg.train.device)
    model = build_detector(cfg)
    load_weights(model, state, checkpoint, cfg)
    model.to(device).eval()
    if compile:
        model.compile_for_inference()
    D.ensure_dataset(cfg, ("val",))
    records = D.load_records(cfg, "val")
    D.check_split_images(cfg, "val", records)  # none readable: an error, not empty metrics
    loader = D.eval_loader(cfg, D.build_dataset(cfg, records, train=False))
    box = cfg.eval.box or cfg.data.box
    result, dets = evaluate_model(
        model, loader, records, device, box, cfg.eval.coco, True, cfg.eval.caltech,
        cfg.scores_visible(),
    )  # fmt: skip
    files = write_results(result, out)
    sizes = {r.image_id: (r.width, r.height) for r in records if r.image_id in dets}
    files["detections"] = out / "detections.odgt"
    write_crowdhuman_dets(files["detections"], dets, sizes)
    print(format_table(result))
    _print_skipped(result.skipped_images)
    for name, path in files.items():
        print(f"{name}: {path}")
    return 0


def _print_skipped(skipped: list[str]) -> None:
    if skipped:
        shown = ", ".join(skipped[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        print(
            f"  {len(skipped)} unreadable image(s) scored with no detections, "
            f"their people as missed: {shown}{more}"
        )
