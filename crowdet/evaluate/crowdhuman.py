"""The CrowdHuman metrics as the field computes them: AP, MR^-2 and JI (see METRICS.md).

They reproduce the evaluator released with CrowdDet (`lib/evaluate/`, ported to mmdetection's
`CrowdHumanMetric`) on the same inputs, with defined values where it fails:

- an image without GT boxes is evaluated (the reference crashes): its detections are false
  positives unless they fall in an ignore region;
- no detections at all: AP 0, MR^-2 1, JI 0, with a warning (the reference gives NaN);
- no non-ignored GT at all: recall is taken as 0 (AP 0, MR^-2 1), with a warning (the reference
  divides by zero);
- a miss rate of 0 at a reference FPPI point (every person found before that many false
  positives): the log-average floors miss rates at 1e-10 before the log, as the Caltech toolbox
  does (the reference takes log(0) and returns 0). A perfect detector thus scores 1e-10.

Exactness notes (checked case by case against the reference):

- GT boxes must be read in float64 (`read_odgt(..., box_dtype=np.float64)`, as `eval-dets`
  does): the reference computes x + w of fractional boxes in float64, and float32 storage moves
  pairs at IoU = 0.5 (e.g. 6.8 / 13.6, just below 0.5 with the +1e-6) across the threshold.
- The reference's JI reads its GT from the result file's `gtboxes` (tags 1 / -1), which
  CrowdDet's `tools/test.py` writes rounded to 1 decimal; crowdet reads the GT file. Identical
  for CrowdHuman's integer boxes; with fractional GT the two differ wherever rounding moves an
  IoU across 0.5. The AP and MR^-2 of both read the GT file.
- Same as the reference (no quirk): the JI mean over images with m > 0 or n > 0, the +1e-6 in
  k / (m + n - k), a maximum-total-IoU matching (not maximum cardinality), tags per box
  (anything but `person`, or `extra.ignore` != 0, is an ignore region), clipping of GT and
  detections with the detection record's width/height, IoA on clipped boxes, thresholds
  0.1 * i with a strict `>`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from crowdet.evaluate.matching import EPS, Pairs, max_weight_match

logger = logging.getLogger(__name__)

# The reference FPPI points of MR^-2, exactly as the reference writes them (10^-2 ... 10^0,
# rounded to 4 decimals).
MR_REFS = (0.0100, 0.0178, 0.0316, 0.0562, 0.1000, 0.1778, 0.3162, 0.5623, 1.0000)
MISS_RATE_FLOOR = 1e-10
# JI score thresholds 0.0, 0.1, ..., 0.9, computed as the reference does (0.1 * i).
JI_THRESHOLDS = tuple(0.1 * i for i in range(10))


@dataclass
class Curve:
    """The detections of a set, sorted by score (stable), with the running rates at each one.

    Attributes:
        order: (L,) global detection indices (into `Pairs`) in list order, dropped ones left out.
        tp: (L,) bool, True for a true positive. scores: (L,) their scores.
        recall, precision, fppi, miss_rate: (L,) float64 after each detection.
    """

    order: np.ndarray
    tp: np.ndarray
    scores: np.ndarray
    recall: np.ndarray
    precision: np.ndarray
    fppi: np.ndarray
    miss_rate: np.ndarray


def ranked_curve(
    scores: np.ndarray, is_tp: np.ndarray, dropped: np.ndarray, num_gt: int, num_images: int
) -> Curve:
    """Sort the non-dropped detections by descending score (stable) and accumulate the rates.

    Args:
        scores: (D,) detection scores in set order (images in GT order, then by score).
        is_tp: (D,) bool true positives. dropped: (D,) bool detections left out of the list.
        num_gt: non-ignored GT boxes (recall denominator; 0 is taken as recall 0).
        num_images: images in the set (FPPI denominator).
    """
    kept = np.flatnonzero(~dropped)
    order = kept[np.argsort(-scores[kept], kind="stable")]
    tp = is_tp[order]
    tp_sum = np.cumsum(tp, dtype=np.float64)
    fp_sum = np.cumsum(~tp, dtype=np.float64)
    recall = tp_sum / num_gt if num_gt else np.zeros(len(order))
    precision = tp_sum / np.maximum(tp_sum + fp_sum, 1)
    fppi = fp_sum / max(num_images, 1)
    return Curve(order, tp, scores[order], recall, precision, fppi, 1.0 - recall)


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """Sum of trapezoids over the raw points, from the first detection on (no envelope)."""
    if len(recall) < 2:
        return 0.0
    return float(np.sum(np.diff(recall) * (precision[1:] + precision[:-1]) / 2))


def ref_positions(fppi: np.ndarray, refs=MR_REFS) -> np.ndarray:
    """(R,) list position of each reference: the first with FPPI >= ref, else the last one."""
    pos = np.searchsorted(fppi, np.asarray(refs), side="left")  # fppi is non-decreasing
    return np.minimum(pos, len(fppi) - 1)


def miss_rates_at_refs(curve: Curve, refs=MR_REFS) -> np.ndarray:
    """(R,) miss rate at each reference FPPI point (1 everywhere when there is no detection)."""
    if not len(curve.fppi):
        return np.ones(len(refs))
    return curve.miss_rate[ref_positions(curve.fppi, refs)]


def log_average(miss_rates: np.ndarray) -> float:
    """exp(mean(log(miss rates))), each miss rate floored at MISS_RATE_FLOOR."""
    return float(np.exp(np.mean(np.log(np.maximum(miss_rates, MISS_RATE_FLOOR)))))


def jaccard_curve(pairs: Pairs, thresholds=JI_THRESHOLDS) -> np.ndarray:
    """(T,) JI at each score threshold (detections with score > t kept).

    Per image: k = size of a maximum-total-IoU matching over IoU > 0.5 pairs; unmatched
    detections (GT) whose IoA with an ignore region passes the threshold leave n (m);
    ratio = k / (m + n - k + 1e-6). JI(t) = sum of ratios / images with m > 0 or n > 0.
    """
    out = np.zeros(len(thresholds))
    images = pairs.num_images
    for i, t in enumerate(thresholds):
        keep = pairs.det_score > t
        chosen = max_weight_match(pairs, keep)
        det_hit = np.zeros(pairs.num_dets, bool)
        det_hit[pairs.edge_det[chosen]] = True
        gt_hit = np.zeros(pairs.num_gt, bool)
        gt_hit[pairs.edge_gt[chosen]] = True
        k = np.bincount(pairs.det_image[pairs.edge_det[chosen]], minlength=images)
        n_keep = keep & ~(~det_hit & pairs.det_ignored)
        n = np.bincount(pairs.det_image[n_keep], minlength=images)
        m = np.bincount(pairs.gt_image[~(~gt_hit & pairs.gt_ignored)], minlength=images)
        ratio = k / (m + n - k + EPS)
        counted = int(np.count_nonzero((m > 0) | (n > 0)))
        out[i] = float(np.sum(ratio)) / counted if counted else 0.0
    return out


@dataclass
class CrowdHumanScores:
    """AP, MR^-2 and JI of a set, with what the plots need.

    Attributes:
        AP, MR, JI: fractions in [0, 1].
        curve: the ranked detection list and its rates.
        mr_points: (9,) miss rate at each of MR_REFS.
        ji_curve: (10,) JI at each of JI_THRESHOLDS.
        gt_rank: (G,) position in `curve` of the detection matching each GT, -1 if missed.
    """

    AP: float
    MR: float
    JI: float
    curve: Curve
    mr_points: np.ndarray
    ji_curve: np.ndarray
    gt_rank: np.ndarray


def crowdhuman_scores(
    pairs: Pairs, matched: np.ndarray, ji_curve: np.ndarray | None = None
) -> CrowdHumanScores:
    """AP, MR^-2 and JI from the pairs of a set and its greedy matching (`greedy_match`);
    `ji_curve`: the set's `jaccard_curve` when already computed (e.g. in another process)."""
    if pairs.num_dets == 0:
        logger.warning("no detections at all: AP 0, MR^-2 1, JI 0")
    if pairs.num_gt == 0:
        logger.warning("no non-ignored ground truth box: recall is taken as 0")
    is_tp = matched >= 0
    dropped = ~is_tp & pairs.det_ignored
    curve = ranked_curve(pairs.det_score, is_tp, dropped, pairs.num_gt, pairs.num_images)
    mr_points = miss_rates_at_refs(curve)
    if ji_curve is None:
        ji_curve = jaccard_curve(pairs)
    gt_rank = np.full(pairs.num_gt, -1, np.int64)
    tp_pos = np.flatnonzero(curve.tp)
    gt_rank[matched[curve.order[tp_pos]]] = tp_pos
    return CrowdHumanScores(
        AP=average_precision(curve.recall, curve.precision),
        MR=log_average(mr_points),
        JI=float(ji_curve.max()),
        curve=curve,
        mr_points=mr_points,
        ji_curve=ji_curve,
        gt_rank=gt_rank,
    )
