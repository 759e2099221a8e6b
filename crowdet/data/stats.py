"""Dataset statistics for check-data: crowd density, overlaps, occlusion, box heights, plots.

Everything is computed over people (not ignore regions) unless said otherwise:
- pairs per image: pairs of full boxes in one image with IoU above 0.5 and 0.7 (CrowdHuman's
  crowd-level measure);
- visible fraction: area(visible box clipped to the full box) / area(full box), for people with
  both boxes; occlusion levels bare (> 0.9), partial (0.65, 0.9], heavy (0.2, 0.65], severe <= 0.2;
- box heights: full-box heights in pixels.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from crowdet.boxes import iou
from crowdet.data.records import ImageRecord

logger = logging.getLogger(__name__)

IOU_THRESHOLDS = (0.5, 0.7)
OCCLUSION_LEVELS = (
    ("bare", 0.9, 1.0),
    ("partial", 0.65, 0.9),
    ("heavy", 0.2, 0.65),
    ("severe", 0.0, 0.2),
)
VISIBLE_BINS = np.linspace(0.0, 1.0, 11)
HEIGHT_BINS = np.array([0, 8, 16, 32, 50, 64, 96, 128, 256, 512, 1024, np.inf])
PEOPLE_BINS = np.array([0, 1, 2, 5, 10, 20, 50, 100, 200, 500, np.inf])


def count_overlap_pairs(boxes: np.ndarray, thresholds=IOU_THRESHOLDS) -> list[int]:
    """Number of unordered pairs of (N, 4) xyxy boxes with IoU > t, for each threshold t."""
    if len(boxes) < 2:
        return [0 for _ in thresholds]
    b = torch.from_numpy(np.ascontiguousarray(boxes, np.float32))
    upper = torch.triu(iou(b, b), diagonal=1)
    return [int((upper > t).sum()) for t in thresholds]


def visible_fraction(fbox: np.ndarray, vbox: np.ndarray) -> np.ndarray:
    """(N,) area(vbox clipped to fbox) / area(fbox); NaN where either box is absent."""
    lt = np.maximum(fbox[:, :2], vbox[:, :2])
    rb = np.minimum(fbox[:, 2:], vbox[:, 2:])
    inter = np.clip(rb - lt, 0, None).prod(1)
    full = np.clip(fbox[:, 2:] - fbox[:, :2], 0, None).prod(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = inter / full
    return np.where(np.isfinite(fbox).all(1) & np.isfinite(vbox).all(1) & (full > 0), frac, np.nan)


def occlusion_levels(fractions: np.ndarray) -> dict[str, int]:
    """Counts of people per occlusion level from finite visible fractions."""
    f = fractions[np.isfinite(fractions)]
    counts = {}
    for name, low, high in OCCLUSION_LEVELS:
        mask = (f > low) & (f <= high) if low > 0 else f <= high
        counts[name] = int(mask.sum())
    return counts


def _summary(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {"mean": 0.0, "median": 0.0, "max": 0.0, "p90": 0.0}
    return {
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "max": float(values.max()),
        "p90": float(np.percentile(values, 90)),
    }


def _histogram(values: np.ndarray, bins: np.ndarray) -> dict[str, list]:
    """Counts per bin [a, b); an infinite last edge is written as None (open-ended bin)."""
    counts, edges = np.histogram(values, bins)
    return {
        "edges": [float(e) if np.isfinite(e) else None for e in edges],
        "counts": counts.tolist(),
    }


def dataset_stats(records: list[ImageRecord]) -> dict:
    """Statistics of a list of records, as plain JSON-ready data (see the module docstring)."""
    people = np.array([r.num_people for r in records], np.int64)
    ignore = np.array([int(r.ignore.sum()) for r in records], np.int64)
    pairs = np.array([count_overlap_pairs(r.fbox[~r.ignore]) for r in records], np.int64).reshape(
        -1, 2
    )
    fractions = np.concatenate(
        [visible_fraction(r.fbox[~r.ignore], r.vbox[~r.ignore]) for r in records] or [np.zeros(0)]
    )
    boxes = np.concatenate([r.fbox[~r.ignore] for r in records] or [np.zeros((0, 4))])
    heights = boxes[:, 3] - boxes[:, 1]
    visible = fractions[np.isfinite(fractions)]
    stats = {
        "images": len(records),
        "people": int(people.sum()),
        "ignore_regions": int(ignore.sum()),
        "images_without_people": int((people == 0).sum()),
        "images_with_500_plus_people": int((people >= 500).sum()),
        "people_per_image": {**_summary(people), "histogram": _histogram(people, PEOPLE_BINS)},
        "ignore_per_image": _summary(ignore),
        "visible_fraction": {
            **_summary(visible),
            "people_with_visible_box": len(visible),
            "histogram": _histogram(visible, VISIBLE_BINS),
            "levels": occlusion_levels(fractions),
        },
        "full_box_height": {**_summary(heights), "histogram": _histogram(heights, HEIGHT_BINS)},
    }
    for i, t in enumerate(IOU_THRESHOLDS):
        stats[f"pairs_iou_over_{t}"] = {"total": int(pairs[:, i].sum()), **_summary(pairs[:, i])}
    return stats


def plot_stats(stats: dict, prefix: str | Path) -> list[Path]:
    """Bar charts of the histograms in `stats` as `<prefix>_<name>.png`; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    charts = {
        "people_per_image": ("images by people per image", stats["people_per_image"], True),
        "visible_fraction": ("people by visible fraction", stats["visible_fraction"], False),
        "box_height": ("people by full-box height (px)", stats["full_box_height"], False),
    }
    paths = []
    for name, (title, part, integer) in charts.items():
        edges, counts = part["histogram"]["edges"], part["histogram"]["counts"]
        labels = [_bin_label(a, b, integer) for a, b in zip(edges[:-1], edges[1:])]
        fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
        ax.bar(range(len(counts)), counts, color="#4477aa")
        ax.set_xticks(range(len(counts)), labels, rotation=45, ha="right", fontsize=8)
        ax.set_title(title)
        ax.set_ylabel("count")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        fig.tight_layout()
        path = Path(f"{prefix}_{name}.png")
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def _bin_label(a: float, b: float | None, integer: bool) -> str:
    """'a-b' for a bin [a, b); integer bins as whole numbers ('2-4', '1'); '>= a' if open."""
    if b is None:
        return f">= {a:g}"
    if integer:
        return f"{a:g}" if b - a == 1 else f"{a:g}-{b - 1:g}"
    return f"{a:g}-{b:g}"
