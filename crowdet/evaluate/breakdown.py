"""Miss rate broken down by a GT attribute (visible fraction, box height).

Every bin is scored at the operating points of the whole set's MR^-2: at each reference FPPI
point of the overall ranked list, the bin's miss rate is the fraction of its GT not matched by a
detection at or above that position; the bin's value is the log-average of those nine miss rates
(floored at 1e-10, as MR^-2 is). False positives are counted over the whole set, so the bins
differ from evaluating each subset on its own (the Caltech setups do that).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crowdet.data.records import ImageRecord
from crowdet.evaluate.crowdhuman import CrowdHumanScores, log_average, ref_positions
from crowdet.evaluate.matching import box_area

# Visible fraction of the full body (occlusion levels heavy, partial, bare) and box height bins.
VISIBILITY_BINS = (0.0, 0.3, 0.7, 1.0)
HEIGHT_BINS = (0.0, 50.0, 100.0, 200.0, 400.0, np.inf)


@dataclass
class Breakdown:
    """Miss rate per bin of a GT attribute.

    Attributes:
        name: the attribute ("visibility" or "height").
        edges: (B + 1,) bin edges; bin b holds edges[b] <= value < edges[b + 1] (the last bin
            includes its upper edge).
        counts: (B,) GT boxes per bin.
        mr: (B,) log-average miss rate per bin (1 for an empty bin).
        final_miss: (B,) miss rate of each bin with every detection kept.
    """

    name: str
    edges: np.ndarray
    counts: np.ndarray
    mr: np.ndarray
    final_miss: np.ndarray

    def labels(self) -> list[str]:
        e, last = self.edges, len(self.edges) - 2
        close = ["]" if i == last and np.isfinite(e[-1]) else ")" for i in range(last + 1)]
        return [f"[{e[i]:g}, {e[i + 1]:g}{close[i]}" for i in range(last + 1)]

    def to_json(self) -> dict:
        return {
            lab: {"MR": float(m), "final_miss_rate": float(f), "num_gt": int(c)}
            for lab, m, f, c in zip(self.labels(), self.mr, self.final_miss, self.counts)
        }


def person_attributes(rec: ImageRecord, box_kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(P,) visible fraction and (P,) height of one record's non-ignored boxes of `box_kind`.

    Visible fraction = area(vbox & fbox) / area(fbox), NaN where either box is missing; height
    is that of the evaluated box kind, unclipped.
    """
    boxes = rec.boxes(box_kind).astype(np.float64)
    keep = np.isfinite(boxes).all(1) & ~rec.ignore_for(box_kind)
    full = rec.fbox[keep].astype(np.float64)
    part = rec.vbox[keep].astype(np.float64)
    inter = np.concatenate(
        [np.maximum(full[:, :2], part[:, :2]), np.minimum(full[:, 2:], part[:, 2:])], 1
    )
    area = box_area(full)
    with np.errstate(invalid="ignore", divide="ignore"):
        vis = np.where(area > 0, box_area(inter) / area, np.nan)
    return vis, boxes[keep, 3] - boxes[keep, 1]


def gt_attributes(gt: list[ImageRecord], box_kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(G,) visible fraction and (G,) height of the non-ignored GT boxes, in `Pairs` order."""
    if not gt:
        return np.zeros(0), np.zeros(0)
    vis, hei = zip(*(person_attributes(r, box_kind) for r in gt))
    return np.concatenate(vis), np.concatenate(hei)


def bin_index(values: np.ndarray, edges) -> np.ndarray:
    """(G,) bin of each value, -1 outside the edges or NaN."""
    edges = np.asarray(edges, np.float64)
    idx = np.searchsorted(edges, values, side="right") - 1
    idx[values == edges[-1]] = len(edges) - 2
    idx[(idx < 0) | (idx >= len(edges) - 1)] = -1
    return idx


def miss_rate_breakdown(
    name: str, values: np.ndarray, scores: CrowdHumanScores, edges
) -> Breakdown:
    """Per-bin log-average miss rate at the set's reference operating points."""
    edges = np.asarray(edges, np.float64)
    nbins = len(edges) - 1
    idx = bin_index(values, edges)
    counts = np.bincount(idx[idx >= 0], minlength=nbins)
    rank = scores.gt_rank
    mr, final = np.ones(nbins), np.ones(nbins)
    if len(scores.curve.fppi):
        pos = ref_positions(scores.curve.fppi)
        found = (rank[:, None] >= 0) & (rank[:, None] <= pos[None, :])  # (G, R)
        for b in np.flatnonzero(counts):
            in_bin = idx == b
            mr[b] = log_average(1.0 - found[in_bin].mean(0))
            final[b] = 1.0 - np.mean(rank[in_bin] >= 0)
    return Breakdown(name, edges, counts, mr, final)
