"""Recall of the people in a crowd: those whose box overlaps another person's with IoU > 0.5,
the ones NMS at 0.5 deletes (CrowdHuman has about 2.4 such pairs per image).

A person counts as found when the field's greedy-by-score matching (crowdet.evaluate.matching,
IoU > 0.5, ignore regions as the CrowdHuman evaluation treats them) gives it a detection; the
recall is over every detection given, whatever its score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crowdet.data.records import ImageRecord
from crowdet.evaluate.evaluator import (
    DetectionsByImage,
    check_inputs,
    crowdhuman_image,
    detections_of,
    image_size,
)
from crowdet.evaluate.matching import build_pairs, greedy_match, pairwise_iou


@dataclass
class CrowdRecall:
    """recall: found / people (NaN without crowded people); people: how many overlap another
    person with IoU > overlap; found: how many of them a detection matched."""

    recall: float
    people: int
    found: int


def crowded(gt: np.ndarray, overlap: float = 0.5) -> np.ndarray:
    """gt (G, 4) xyxy -> (G,) True where a box overlaps another with IoU > overlap."""
    if len(gt) < 2:
        return np.zeros(len(gt), bool)
    iou = pairwise_iou(gt, gt)
    np.fill_diagonal(iou, 0.0)
    return iou.max(1) > overlap


def crowd_recall(
    gt: list[ImageRecord],
    dets: DetectionsByImage,
    box_kind: str = "full",
    sizes: dict[str, tuple[int, int]] | None = None,
    overlap: float = 0.5,
) -> CrowdRecall:
    """The recall of the people of `gt` (their `box_kind` boxes) that overlap another person
    with IoU > overlap, by dets (image ID -> (boxes (N, 4) xyxy, scores (N,)))."""
    check_inputs(gt, dets, box_kind)
    dets = {r.image_id: detections_of(r.image_id, dets) for r in gt if r.image_id in dets}
    images = [crowdhuman_image(r, dets, box_kind, image_size(r, sizes)) for r in gt]
    pairs = build_pairs(images)
    matched = greedy_match(pairs)
    hit = np.zeros(pairs.num_gt, bool)
    hit[matched[matched >= 0]] = True
    masks = [crowded(im.gt, overlap) for im in images]
    mask = np.concatenate(masks) if masks else np.zeros(0, bool)
    people, found = int(mask.sum()), int(hit[mask].sum())
    return CrowdRecall(found / people if people else float("nan"), people, found)
