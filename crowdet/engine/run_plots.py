"""The pictures of a training run, as `crowdet demo` draws them: the latest validation's
precision-recall, MR-FPPI, JI and miss-rate breakdown plots and its predictions beside the
ground truth, and the training curves (losses, learning rate, validation metrics)."""

from __future__ import annotations

from pathlib import Path


def write_run_plots(trainer, out_dir: Path) -> dict[str, Path]:
    """Write into `out_dir` what the run has so far (no validation yet: the curves only)."""
    from crowdet.evaluate.plots import plot_all
    from crowdet.visualize import plot_training_curves

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    if trainer.last_eval is not None:
        from crowdet.commands.demo import draw_predictions

        result, dets = trainer.last_eval
        paths.update(plot_all(result, out_dir))
        paths["predictions"] = draw_predictions(trainer, dets, out_dir / "predictions.png")
    metrics = trainer.run_dir / "metrics.jsonl"
    if metrics.is_file() and metrics.stat().st_size:
        paths["training_curves"] = plot_training_curves(metrics, out_dir / "training_curves.png")
    return paths
