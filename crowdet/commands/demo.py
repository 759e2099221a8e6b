"""`crowdet demo [--out DIR] [--quick]`: synthetic crowd data -> train -> evaluate -> report."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

HELP = "make the synthetic crowd dataset, train the demo detector, evaluate it, draw the results"
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder")
    p.add_argument("--quick", action="store_true", help="a reduced run (seconds) on tiny data")
    p.add_argument("--config", type=Path, help="config to train (default configs/demo.yaml)")


def run(args) -> int:
    from crowdet.config import load_config
    from crowdet.engine.data import ensure_dataset
    from crowdet.engine.trainer import Trainer
    from crowdet.evaluate import format_table, write_results
    from crowdet.evaluate.detfile import write_crowdhuman_dets

    out: Path = args.out
    config = args.config or CONFIGS / ("tiny.yaml" if args.quick else "demo.yaml")
    overrides = list(args.overrides)
    if args.quick:  # enough steps on the tiny config for the model to start detecting
        overrides = [f"data.root={out / 'data'}", "train.max_iters=40", "train.lr=0.01", *overrides]
    cfg = load_config(config, overrides)
    start = time.perf_counter()
    ensure_dataset(cfg)
    data_time = time.perf_counter() - start
    trainer = Trainer(cfg, out / "train")
    if trainer.train() is None:
        from crowdet.commands.train import stop_exit_code

        print(f"stopped; continue with: crowdet train {config} --resume {trainer.run_dir}")
        return stop_exit_code(trainer.stop_signal)
    train_time = time.perf_counter() - start - data_time
    result, dets = trainer.last_eval
    files = write_results(result, out)
    sizes = {r.image_id: (r.width, r.height) for r in trainer.val_records if r.image_id in dets}
    files["detections"] = out / "val_detections.odgt"
    write_crowdhuman_dets(files["detections"], dets, sizes)
    files["predictions"] = draw_predictions(trainer, dets, out / "predictions.png")
    from crowdet.visualize import plot_training_curves

    curves = plot_training_curves(trainer.run_dir / "metrics.jsonl", out / "training_curves.png")
    files["training_curves"] = curves
    summary = json.loads((out / "metrics.json").read_text())
    summary["data_seconds"] = round(data_time, 1)
    summary["train_seconds"] = round(train_time, 1)
    summary["train_iters"] = trainer.iter
    summary["train_images_per_s"] = round(trainer.iter * cfg.train.batch_size / train_time, 2)
    summary["total_seconds"] = round(time.perf_counter() - start, 1)
    summary["machine"] = machine_summary(trainer)
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    print(format_table(result))
    t = cfg.train
    for line in machine_warnings(summary["machine"], t.budget_min_iters, t.budget_curve):
        print(f"note: {line}")
    print(
        f"dataset ready in {data_time:.0f} s; trained {trainer.iter} steps x "
        f"{cfg.train.batch_size} images in {train_time:.0f} s ({summary['train_images_per_s']} "
        f"images/s, final validation included); whole demo {summary['total_seconds']:.0f} s"
    )
    print(f"run folder: {trainer.run_dir}")
    for name, path in files.items():
        print(f"{name}: {path}")
    return 0


def machine_summary(trainer) -> dict:
    """The CPU, the precision it trained in, and what the machine check found."""
    import torch

    from crowdet.engine.hardware import cpu_info

    cpu = cpu_info()
    return {
        "cpu": cpu.model, "cores": cpu.cores, "isa": cpu.isa, "native_bf16": cpu.bf16,
        "precision": "fp32" if trainer.amp == "off" else trainer.amp,
        "threads": torch.get_num_threads(), **trainer.budget.machine,
    }  # fmt: skip


def machine_warnings(machine: dict, min_iters: int, curve=()) -> list[str]:
    """Why these figures may be below the README's: a busy machine, too few steps (and what the
    recipe's measured `curve` expects at that count)."""
    from crowdet.engine.budget import expectation

    lines = []
    if machine.get("busy"):
        lines.append(
            f"the machine was busy (this run's threads got a CPU {machine['cpu_share']:.0%} of "
            "the time they were ready to run): "
            "other processes took training steps, and the figures are lower than on a quiet one"
        )
    if machine.get("short"):
        line = (
            f"the time budget fitted {machine['planned_iters']} steps, fewer than the {min_iters} "
            "the demo recipe needs for the README's figures"
        )
        if "expected" in machine:
            line += f": {expectation(machine['expected'], curve)}"
        lines.append(line)
    return lines


def draw_predictions(trainer, dets, path: Path, num: int = 4) -> Path:
    """Predictions beside ground truth for the first `num` validation images."""
    import numpy as np

    from crowdet.data.images import read_image
    from crowdet.visualize import prediction_panel, save_prediction_grid

    panels = []
    box = trainer.cfg.eval.box or trainer.cfg.data.box
    for rec in trainer.val_records[:num]:
        if rec.image_id not in dets:
            continue
        boxes, scores = dets[rec.image_id]
        gt = rec.boxes(box)
        keep = np.isfinite(gt).all(1)
        panel = prediction_panel(
            read_image(rec.image_path), gt[keep], rec.ignore_for(box)[keep], boxes, scores
        )
        panels.append(panel)
    return save_prediction_grid(panels, path)
