"""A readable results table and the files of an evaluation: metrics.json and the plots."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from crowdet.data.atomic import atomic_write_text
from crowdet.evaluate.caltech import CALTECH_SETUPS

COCO_LABELS = {
    "AP": "COCO AP@[.5:.95] (101-point)",
    "AP50": "COCO AP50",
    "AP75": "COCO AP75",
    "APs": "COCO AP small (<32^2 px)",
    "APm": "COCO AP medium",
    "APl": "COCO AP large (>96^2 px)",
    "AR": "COCO AR@1000 dets/image",
}


def _row(name: str, value: float, note: str = "") -> str:
    return f"  {name:<58} {100 * value:7.2f}  {note}".rstrip()


def format_table(result) -> str:
    """The metrics of an `EvalResult` as a table (values in %), each named unambiguously."""
    best_t = float(result.ji_thresholds[int(np.argmax(result.ji_curve))])
    lines = [
        f"Evaluation of {result.box} boxes: {result.num_images} images, {result.num_gt} GT boxes "
        f"(+{result.num_ignore} ignore regions), {result.num_dets} detections",
        f"  {'metric':<58} {'value %':>7}",
        _row("CrowdHuman AP (IoU > 0.5)", result.AP, "higher is better"),
        _row("MR^-2 (CrowdHuman definition)", result.MR, "lower is better"),
        _row("JI (Jaccard index)", result.JI, f"best at score > {best_t:.1f}"),
    ]
    for key, label in COCO_LABELS.items():
        if key in result.coco:
            lines.append(_row(label, result.coco[key]))
    labels = {s.name: s.label() for s in CALTECH_SETUPS}
    for name, value in result.caltech.items():
        label = f"Caltech/CityPersons MR^-2, {labels.get(name, name)}"
        lines.append(_row(label, value, "lower is better"))
    return "\n".join(lines)


def _clean(obj):
    """JSON-safe copy: numpy scalars to Python, non-finite floats to None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def write_results(result, out_dir: str | os.PathLike, plots: bool = True) -> dict[str, Path]:
    """Write `out_dir/metrics.json` (atomically) and the PNG plots; returns name -> path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = out_dir / "metrics.json"
    atomic_write_text(metrics, json.dumps(_clean(result.to_json()), indent=2) + "\n")
    paths = {"metrics": metrics}
    if plots:
        from crowdet.evaluate.plots import plot_all

        paths.update(plot_all(result, out_dir))
    return paths
