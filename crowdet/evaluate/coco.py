"""COCO metrics (AP@[.5:.95] with 101-point interpolation, AP50, AP75, by size, AR) through
faster-coco-eval, on the same records and detections as the CrowdHuman metrics.

Ignore regions become `iscrowd=1` annotations (matched by IoA, never counted as misses), boxes
are compared unclipped, as the COCO evaluator sees a converted annotation file, and the
detection cap is raised from 100 to 1000 per image (`MAX_DETS`). COCO AP is a different number
from CrowdHuman AP: always report which one is which.
"""

from __future__ import annotations

import logging

import numpy as np

from crowdet.data.records import ImageRecord

logger = logging.getLogger(__name__)

MAX_DETS = (1, 100, 1000)
# faster-coco-eval's `stats` positions (the COCO summary layout) -> our names.
STAT_NAMES = {0: "AP", 1: "AP50", 2: "AP75", 3: "APs", 4: "APm", 5: "APl", 8: "AR"}


def _xywh(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], 1)


def coco_gt_dict(gt: list[ImageRecord], box_kind: str = "full") -> dict:
    """A COCO ground-truth dict: image ids 1..N in record order, one "person" category,
    ignore regions as iscrowd=1; rows without a box of this kind are left out."""
    images, anns = [], []
    for i, rec in enumerate(gt, 1):
        images.append(
            {"id": i, "file_name": rec.image_id, "width": rec.width, "height": rec.height}
        )
        boxes = rec.boxes(box_kind)
        keep = np.isfinite(boxes).all(1)
        xywh = _xywh(boxes[keep]).tolist()
        crowd = rec.ignore_for(box_kind)[keep].tolist()
        for box, is_crowd in zip(xywh, crowd):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": 1,
                    "bbox": box,
                    "area": max(box[2], 0) * max(box[3], 0),
                    "iscrowd": int(is_crowd),
                }
            )
    categories = [{"id": 1, "name": "person"}]
    return {"images": images, "annotations": anns, "categories": categories}


def coco_dt_list(
    gt: list[ImageRecord], dets: dict[str, tuple[np.ndarray, np.ndarray]]
) -> list[dict]:
    """COCO results (image ids as in `coco_gt_dict`), boxes xywh."""
    out = []
    for i, rec in enumerate(gt, 1):
        if rec.image_id not in dets:
            continue
        boxes, scores = dets[rec.image_id]
        for box, score in zip(_xywh(boxes).tolist(), np.asarray(scores).reshape(-1).tolist()):
            out.append({"image_id": i, "category_id": 1, "bbox": box, "score": score})
    return out


def coco_metrics(
    gt: list[ImageRecord], dets: dict[str, tuple[np.ndarray, np.ndarray]], box_kind: str = "full"
) -> dict[str, float]:
    """AP, AP50, AP75, APs, APm, APl and AR (at 1000 detections per image), fractions in [0, 1].

    A metric the evaluator cannot define (no GT of that size) is reported as 0.
    """
    from faster_coco_eval import COCO, COCOeval_faster

    gt_dict = coco_gt_dict(gt, box_kind)
    dt_list = coco_dt_list(gt, dets)
    if not dt_list:
        logger.warning("no detections: COCO metrics are 0")
        return dict.fromkeys(STAT_NAMES.values(), 0.0)
    coco_gt = COCO(gt_dict)
    coco_dt = coco_gt.loadRes(dt_list)
    ev = COCOeval_faster(coco_gt, coco_dt, "bbox", print_function=logger.debug)
    ev.params.maxDets = list(MAX_DETS)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return {name: max(float(ev.stats[i]), 0.0) for i, name in STAT_NAMES.items()}
