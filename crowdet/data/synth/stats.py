"""Summary statistics of a set of ImageRecords: the numbers the CrowdHuman paper reports."""

from __future__ import annotations

import numpy as np

from crowdet.data.records import ImageRecord

HEIGHT_QUANTILES = (5, 25, 50, 75, 95)


def summarize(records: list[ImageRecord], visible: list[np.ndarray]) -> dict:
    """Per-image statistics of annotated people (rows not flagged `ignore`).

    Args:
        records: one per image.
        visible: per image, (N,) visible share of each annotated person's in-frame silhouette.
    """
    from crowdet.data.stats import count_overlap_pairs  # here: image workers never load torch

    n = max(len(records), 1)
    people = np.array([r.num_people for r in records], np.float64)
    counts = [count_overlap_pairs(r.fbox[~r.ignore], (0.3, 0.5, 0.7)) for r in records]
    pairs = np.array(counts).reshape(-1, 3)
    heights = np.concatenate([r.fbox[~r.ignore, 3] - r.fbox[~r.ignore, 1] for r in records] or [[]])
    occ = np.concatenate([r.occ[~r.ignore] for r in records] or [[]])
    vis = np.concatenate(visible or [[]])
    quant = np.percentile(heights, HEIGHT_QUANTILES) if len(heights) else [0.0] * 5
    return {
        "images": len(records),
        "people": int(people.sum()),
        "people_per_image": float(people.sum() / n),
        "pairs_iou30_per_image": float(pairs[:, 0].sum() / n),
        "pairs_iou50_per_image": float(pairs[:, 1].sum() / n),
        "pairs_iou70_per_image": float(pairs[:, 2].sum() / n),
        "ignore_regions_per_image": float(sum(int(r.ignore.sum()) for r in records) / n),
        "mean_visible_fraction": float(vis.mean()) if len(vis) else 0.0,
        "occluded_share": float(occ.mean()) if len(occ) else 0.0,
        "height_quantiles": {f"p{q}": float(v) for q, v in zip(HEIGHT_QUANTILES, quant)},
        "min_height": float(heights.min()) if len(heights) else 0.0,
    }
