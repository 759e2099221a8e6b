"""PNG plots of an `EvalResult` (matplotlib, no pyplot state): precision-recall, miss rate
against FPPI (log-log), JI against the score threshold, and miss rate by GT visibility and by GT
height."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from crowdet.evaluate.breakdown import Breakdown
from crowdet.evaluate.crowdhuman import MISS_RATE_FLOOR


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_pr(result, path: Path) -> Path:
    """Precision against recall of the ranked detection list."""
    fig = Figure(figsize=(5, 4.2))
    ax = fig.add_subplot()
    ax.plot(result.recall, result.precision, lw=1.5)
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision")
    ax.set_title(f"Precision-recall ({result.box} boxes): CrowdHuman AP {100 * result.AP:.2f}")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_mr_fppi(result, path: Path) -> Path:
    """Miss rate against false positives per image, log-log, with the 9 MR^-2 points."""
    fig = Figure(figsize=(5, 4.2))
    ax = fig.add_subplot()
    fppi, miss = result.fppi, np.maximum(result.miss_rate, MISS_RATE_FLOOR)
    keep = fppi > 0
    ax.loglog(fppi[keep], miss[keep], lw=1.5, label="detections")
    ax.loglog(
        result.mr_refs,
        np.maximum(result.mr_points, MISS_RATE_FLOOR),
        "o",
        ms=4,
        label="MR$^{-2}$ reference points",
    )
    ax.set(xlabel="false positives per image", ylabel="miss rate", xlim=(1e-3, 1e2))
    ax.set_title(f"Miss rate vs FPPI: MR$^{{-2}}$ {100 * result.MR:.2f} (CrowdHuman)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


def plot_ji(result, path: Path) -> Path:
    """JI against the detection score threshold."""
    fig = Figure(figsize=(5, 3.6))
    ax = fig.add_subplot()
    ax.plot(result.ji_thresholds, result.ji_curve, "o-", lw=1.5)
    ax.set(xlabel="score threshold", ylabel="JI", ylim=(0, 1))
    ax.set_title(f"Jaccard index by score threshold: JI {100 * result.JI:.2f}")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_breakdown(b: Breakdown, title: str, xlabel: str, path: Path) -> Path:
    """Bars: log-average miss rate per bin, with the number of GT boxes on each bar."""
    fig = Figure(figsize=(5.6, 3.8))
    ax = fig.add_subplot()
    x = np.arange(len(b.counts))
    bars = ax.bar(x, np.where(b.counts > 0, b.mr, 0), color="tab:red", alpha=0.8)
    for rect, n in zip(bars, b.counts):
        ax.annotate(
            f"n={n}",
            (rect.get_x() + rect.get_width() / 2, rect.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_xticks(x, b.labels(), fontsize=8)
    ax.set(xlabel=xlabel, ylabel="log-average miss rate", ylim=(0, 1.1))
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def plot_all(result, out_dir: Path) -> dict[str, Path]:
    """Write every plot of `result` into `out_dir`; returns name -> path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "pr": plot_pr(result, out_dir / "pr_curve.png"),
        "mr_fppi": plot_mr_fppi(result, out_dir / "mr_fppi.png"),
        "ji": plot_ji(result, out_dir / "ji_threshold.png"),
    }
    if result.occlusion is not None:
        paths["mr_occlusion"] = plot_breakdown(
            result.occlusion,
            "Miss rate by visible fraction (at the set's MR$^{-2}$ operating points)",
            "visible fraction of the full body (vbox / fbox)",
            out_dir / "mr_by_occlusion.png",
        )
    if result.height is not None:
        paths["mr_height"] = plot_breakdown(
            result.height,
            "Miss rate by box height (at the set's MR$^{-2}$ operating points)",
            f"{result.box} box height (pixels)",
            out_dir / "mr_by_height.png",
        )
    return paths
