"""`evaluate`: ground-truth records + detections -> `EvalResult` (CrowdHuman AP, MR^-2, JI, COCO
metrics, optionally the Caltech/CityPersons MR^-2 setups), with the curves the plots draw."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from crowdet.data.records import BOX_KINDS, ImageRecord
from crowdet.errors import CrowdetError
from crowdet.evaluate.beside import Beside
from crowdet.evaluate.breakdown import (
    HEIGHT_BINS,
    VISIBILITY_BINS,
    Breakdown,
    gt_attributes,
    miss_rate_breakdown,
)
from crowdet.evaluate.crowdhuman import JI_THRESHOLDS, MR_REFS, crowdhuman_scores, jaccard_curve
from crowdet.evaluate.matching import ImageBoxes, build_pairs, clip_boxes, greedy_match

logger = logging.getLogger(__name__)

# image ID -> (boxes (N, 4) xyxy, scores (N,)) of the detections of that image
DetectionsByImage = dict[str, tuple[np.ndarray, np.ndarray]]


@dataclass
class EvalResult:
    """Metrics of one detection set against its ground truth.

    Attributes:
        AP: CrowdHuman AP (trapezoids over the raw PR points), in [0, 1].
        MR: CrowdHuman MR^-2 (log-average miss rate over FPPI 1e-2..1e0), in [0, 1], lower is
            better.
        JI: Jaccard index (max over score thresholds 0.0..0.9), in [0, 1].
        coco: COCO metrics (AP@[.5:.95], AP50, AP75, APs, APm, APl, AR@1000), or {} if skipped.
        caltech: Caltech/CityPersons MR^-2 per setup ("Reasonable", ...), or {} if not asked.
        box: the box kind evaluated ("full", "visible" or "head").
        num_images, num_gt, num_ignore, num_dets: counts (non-ignored GT, ignore regions, all
            detections given).
        recall, precision, fppi, miss_rate, scores: (L,) the ranked detection list's running
            rates (ignore-matched detections left out).
        mr_refs, mr_points: (9,) reference FPPI points and the miss rate at each.
        ji_thresholds, ji_curve: (10,) score thresholds and the JI at each.
        occlusion, height: miss rate by GT visibility and by GT height bins.
        skipped_images: IDs of images that could not be read, scored with no detections.
    """

    AP: float
    MR: float
    JI: float
    coco: dict[str, float] = field(default_factory=dict)
    caltech: dict[str, float] = field(default_factory=dict)
    box: str = "full"
    num_images: int = 0
    num_gt: int = 0
    num_ignore: int = 0
    num_dets: int = 0
    recall: np.ndarray = field(default_factory=lambda: np.zeros(0))
    precision: np.ndarray = field(default_factory=lambda: np.zeros(0))
    fppi: np.ndarray = field(default_factory=lambda: np.zeros(0))
    miss_rate: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    mr_refs: np.ndarray = field(default_factory=lambda: np.asarray(MR_REFS))
    mr_points: np.ndarray = field(default_factory=lambda: np.ones(len(MR_REFS)))
    ji_thresholds: np.ndarray = field(default_factory=lambda: np.asarray(JI_THRESHOLDS))
    ji_curve: np.ndarray = field(default_factory=lambda: np.zeros(len(JI_THRESHOLDS)))
    occlusion: Breakdown | None = None
    height: Breakdown | None = None
    skipped_images: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """The metrics.json content: AP, MR, JI, coco, counts, plus box, caltech, JI curve."""
        out = {
            "AP": self.AP,
            "MR": self.MR,
            "JI": self.JI,
            "coco": dict(self.coco),
            "num_images": self.num_images,
            "num_gt": self.num_gt,
            "num_dets": self.num_dets,
            "num_ignore": self.num_ignore,
            "box": self.box,
            "mr_points": dict(zip([f"{r:g}" for r in self.mr_refs], self.mr_points.tolist())),
            "ji_per_threshold": dict(
                zip([f"{t:.1f}" for t in self.ji_thresholds], self.ji_curve.tolist())
            ),
        }
        if self.caltech:
            out["caltech"] = dict(self.caltech)
        if self.skipped_images:
            out["skipped_images"] = list(self.skipped_images)
        for name, b in (("occlusion", self.occlusion), ("height", self.height)):
            if b is not None:
                out[f"mr_by_{name}"] = b.to_json()
        return out


def image_size(record: ImageRecord, sizes: dict[str, tuple[int, int]] | None) -> tuple[int, int]:
    """(W, H) of an image: from `sizes` when given there, else from the record."""
    if sizes is not None and record.image_id in sizes:
        w, h = sizes[record.image_id]
    else:
        w, h = record.width, record.height
    if not (w and h and w > 0 and h > 0):
        raise CrowdetError(
            f"image {record.image_id!r}: size unknown (the boxes are clipped to the image); "
            "give width/height in the detection file or the annotations, or the images folder"
        )
    return int(w), int(h)


def check_inputs(gt: list[ImageRecord], dets: DetectionsByImage, box_kind: str) -> None:
    """Raise CrowdetError for an unknown box kind, duplicate GT IDs or detections of unknown IDs."""
    if box_kind not in BOX_KINDS:
        raise CrowdetError(f"unknown box kind {box_kind!r}; expected one of {BOX_KINDS}")
    ids: set[str] = set()
    for rec in gt:
        if rec.image_id in ids:
            raise CrowdetError(f"duplicate image ID {rec.image_id!r} in the ground truth")
        ids.add(rec.image_id)
    unknown = [i for i in dets if i not in ids]
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise CrowdetError(
            f"detections for image ID {unknown[0]!r}{more}, which is not in the ground truth"
        )


def _numpy(a) -> np.ndarray:
    """A numpy array from an array-like or a (possibly CUDA) torch tensor."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def detections_of(image_id: str, dets: DetectionsByImage) -> tuple[np.ndarray, np.ndarray]:
    """(boxes (N, 4) float64, scores (N,) float64) of one image, checked; empty if absent."""
    if image_id not in dets:
        return np.zeros((0, 4)), np.zeros(0)
    boxes, scores = dets[image_id]
    boxes = _numpy(boxes).astype(np.float64)
    scores = _numpy(scores).astype(np.float64).reshape(-1)
    if boxes.size == 0 and len(scores) == 0:
        return np.zeros((0, 4)), np.zeros(0)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or len(boxes) != len(scores):
        raise CrowdetError(
            f"image {image_id!r}: detections must be boxes (N, 4) and scores (N,), "
            f"got {boxes.shape} and {scores.shape}"
        )
    if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
        raise CrowdetError(f"image {image_id!r}: detection boxes or scores are not finite")
    return boxes, scores


def gt_split(record: ImageRecord, box_kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Row masks (valid, ignore) of a record for one box kind; rows without that box are neither."""
    finite = np.isfinite(record.boxes(box_kind)).all(1)
    ignore = record.ignore_for(box_kind)
    return finite & ~ignore, finite & ignore


def crowdhuman_image(
    record: ImageRecord, dets: DetectionsByImage, box_kind: str, size: tuple[int, int]
) -> ImageBoxes:
    """One image's clipped float64 boxes, detections sorted by descending score (stable).

    dets: checked float64 detections (`detections_of`); an absent image has none.
    """
    boxes, scores = dets.get(record.image_id, (np.zeros((0, 4)), np.zeros(0)))
    order = np.argsort(-scores, kind="stable")
    valid, ignore = gt_split(record, box_kind)
    kind_boxes = record.boxes(box_kind)
    w, h = size
    return ImageBoxes(
        dt=clip_boxes(boxes[order], w, h),
        scores=scores[order],
        gt=clip_boxes(kind_boxes[valid], w, h),
        ign=clip_boxes(kind_boxes[ignore], w, h),
    )


def evaluate(
    gt: list[ImageRecord],
    dets: DetectionsByImage,
    box_kind: str = "full",
    sizes: dict[str, tuple[int, int]] | None = None,
    coco: bool = True,
    caltech: bool = False,
    parallel: bool = False,
) -> EvalResult:
    """Evaluate detections against ground truth.

    Args:
        gt: one record per image (the set's images, in the GT file's order: ties in score keep
            this order, as the reference does).
        dets: image ID -> (boxes (N, 4) xyxy in image pixels, scores (N,)); images missing here
            have no detections.
        box_kind: "full", "visible" or "head": which GT boxes the detections are compared with.
        sizes: image ID -> (W, H) for the clipping (a detection file's width/height); the
            records' width/height otherwise.
        coco: also compute the COCO metrics (faster-coco-eval).
        caltech: also compute the Caltech/CityPersons MR^-2 setups.
        parallel: compute the JI in a forked child process beside the rest (same result; for
            a command-line evaluation on a multi-core machine, not inside training).

    Raises:
        CrowdetError: unknown box kind, duplicate GT IDs, detections for an ID not in the GT,
            malformed detection arrays, an image whose size is unknown.
    """
    check_inputs(gt, dets, box_kind)
    dets = {r.image_id: detections_of(r.image_id, dets) for r in gt if r.image_id in dets}
    coco_job = Beside(_coco, gt, dets, box_kind, enabled=parallel) if coco else None
    images = [crowdhuman_image(r, dets, box_kind, image_size(r, sizes)) for r in gt]
    pairs = build_pairs(images)
    ji_job = Beside(jaccard_curve, pairs, enabled=parallel)
    matched = greedy_match(pairs)
    visibility, heights = gt_attributes(gt, box_kind)
    scores = crowdhuman_scores(pairs, matched, ji_job.result())
    curve = scores.curve
    result = EvalResult(
        AP=scores.AP,
        MR=scores.MR,
        JI=scores.JI,
        box=box_kind,
        num_images=pairs.num_images,
        num_gt=pairs.num_gt,
        num_ignore=int(sum(gt_split(r, box_kind)[1].sum() for r in gt)),
        num_dets=pairs.num_dets,
        recall=curve.recall,
        precision=curve.precision,
        fppi=curve.fppi,
        miss_rate=curve.miss_rate,
        scores=curve.scores,
        mr_points=scores.mr_points,
        ji_curve=scores.ji_curve,
        occlusion=miss_rate_breakdown("visibility", visibility, scores, VISIBILITY_BINS),
        height=miss_rate_breakdown("height", heights, scores, HEIGHT_BINS),
    )
    if coco_job is not None:
        result.coco = coco_job.result()
    if caltech:
        from crowdet.evaluate.caltech import caltech_metrics

        result.caltech = caltech_metrics(gt, dets, box_kind)
    return result


def _coco(gt: list[ImageRecord], dets: DetectionsByImage, box_kind: str) -> dict:
    from crowdet.evaluate.coco import coco_metrics

    return coco_metrics(gt, dets, box_kind)
