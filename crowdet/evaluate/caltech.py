"""The Caltech / CityPersons log-average miss rate (MR^-2) with its evaluation setups.

A different number from the CrowdHuman MR^-2, never to be mixed with it. It follows the
CityPersons evaluation code (`eval_MR_multisetup.py`):

- per setup, GT whose box height or visible fraction is outside the setup's ranges (inclusive)
  become ignore regions; detections shorter than `height_lo / 1.25` or at least
  `height_hi * 1.25` are dropped;
- boxes are not clipped; IoU >= 0.5 (no epsilon), ties going to the later GT; a detection
  matched to no person but with IoA (over its own area) >= 0.5 with an ignore region is dropped;
- recall along the score-sorted list (cumulative, hence monotone); at each of the nine FPPI
  points 10^-2..10^0 the recall of the LAST position with FPPI <= the point, 0 when there is
  none (as the Caltech toolbox does; CityPersons' Python takes the final recall there, an
  index-wrapping slip); MR^-2 = exp(mean(log(max(miss rate, 1e-10)))).

The visible fraction is area(vbox & fbox) / area(fbox); a person without a visible box counts
as fully visible. A setup without any person in range scores 1, with a warning.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from crowdet.data.records import ImageRecord
from crowdet.evaluate.breakdown import person_attributes
from crowdet.evaluate.crowdhuman import MR_REFS, log_average, ranked_curve
from crowdet.evaluate.matching import ImageBoxes, PairRule, build_pairs, greedy_match

logger = logging.getLogger(__name__)

CITYPERSONS_RULE = PairRule(threshold=0.5, inclusive=True, eps=0.0)
EXP_FILTER = 1.25  # detections are kept within [height_lo / 1.25, height_hi * 1.25)


@dataclass(frozen=True)
class CaltechSetup:
    """One evaluation setup: inclusive ranges of GT box height (pixels) and visible fraction."""

    name: str
    height: tuple[float, float]
    visibility: tuple[float, float]

    def label(self) -> str:
        """E.g. "Reasonable (h>=50, vis>=0.65)", "Small (h 50..75, vis>=0.65)"."""

        def rng(name: str, lo: float, hi: float) -> str:
            return f"{name}>={lo:g}" if math.isinf(hi) else f"{name} {lo:g}..{hi:g}"

        return f"{self.name} ({rng('h', *self.height)}, {rng('vis', *self.visibility)})"


INF = math.inf
CALTECH_SETUPS = (
    CaltechSetup("Reasonable", (50, INF), (0.65, INF)),
    CaltechSetup("Small", (50, 75), (0.65, INF)),
    CaltechSetup("Heavy", (50, INF), (0.2, 0.65)),
    CaltechSetup("All", (20, INF), (0.2, INF)),
)


def _in_setup(rec: ImageRecord, box_kind: str, setup: CaltechSetup) -> np.ndarray:
    """(P,) True for the people of a record inside the setup's height and visibility ranges."""
    vis, height = person_attributes(rec, box_kind)
    vis = np.where(np.isnan(vis), 1.0, vis)
    (hlo, hhi), (vlo, vhi) = setup.height, setup.visibility
    return (height >= hlo) & (height <= hhi) & (vis >= vlo) & (vis <= vhi)


def _setup_image(
    rec: ImageRecord,
    det: tuple[np.ndarray, np.ndarray] | None,
    box_kind: str,
    setup: CaltechSetup,
) -> ImageBoxes:
    """One image under a setup: unclipped float64 boxes, out-of-setup people as ignore."""
    boxes = rec.boxes(box_kind).astype(np.float64)
    finite = np.isfinite(boxes).all(1)
    person = finite & ~rec.ignore_for(box_kind)
    regular = person.copy()
    regular[person] = _in_setup(rec, box_kind, setup)
    dt, scores = det if det is not None else (np.zeros((0, 4)), np.zeros(0))
    dt, scores = np.asarray(dt, np.float64).reshape(-1, 4), np.asarray(scores, np.float64)
    order = np.argsort(-scores, kind="stable")
    dt, scores = dt[order], scores[order]
    h = dt[:, 3] - dt[:, 1]
    lo, hi = setup.height
    keep = (h >= lo / EXP_FILTER) & (h < hi * EXP_FILTER)
    return ImageBoxes(dt[keep], scores[keep], gt=boxes[regular], ign=boxes[finite & ~regular])


def recall_at_refs(recall: np.ndarray, fppi: np.ndarray, refs=MR_REFS) -> np.ndarray:
    """(R,) recall at the last position with FPPI <= each reference, 0 where there is none."""
    pos = np.searchsorted(fppi, np.asarray(refs), side="right") - 1
    return np.where(pos >= 0, recall[np.maximum(pos, 0)] if len(recall) else 0.0, 0.0)


def setup_mr(
    gt: list[ImageRecord],
    dets: dict[str, tuple[np.ndarray, np.ndarray]],
    box_kind: str,
    setup: CaltechSetup,
) -> float:
    """MR^-2 (fraction) of one setup."""
    images = [_setup_image(r, dets.get(r.image_id), box_kind, setup) for r in gt]
    pairs = build_pairs(images, CITYPERSONS_RULE)
    if pairs.num_gt == 0:
        logger.warning("Caltech setup %s: no person in range; MR^-2 taken as 1", setup.name)
        return 1.0
    is_tp = greedy_match(pairs, prefer_last=True) >= 0
    dropped = ~is_tp & pairs.det_ignored
    curve = ranked_curve(pairs.det_score, is_tp, dropped, pairs.num_gt, pairs.num_images)
    return log_average(1.0 - recall_at_refs(curve.recall, curve.fppi))


def caltech_metrics(
    gt: list[ImageRecord],
    dets: dict[str, tuple[np.ndarray, np.ndarray]],
    box_kind: str = "full",
    setups=CALTECH_SETUPS,
) -> dict[str, float]:
    """Caltech/CityPersons MR^-2 (fraction, lower is better) per setup name."""
    return {s.name: setup_mr(gt, dets, box_kind, s) for s in setups}
