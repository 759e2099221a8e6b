"""The suppression step of post-processing, chosen by `postprocess.nms`:

hard      NMS at iou_threshold (torchvision)
soft      Soft-NMS, `soft_method` gaussian (sigma) or linear (decay 1 - IoU above
          iou_threshold); scores decay instead of boxes going
adaptive  Adaptive NMS: a kept box suppresses above max(iou_threshold, its density); needs a
          head with a density branch
visible   visible-box-guided NMS (the idea of R2-NMS): hard NMS decided by the IoU of the
          visible boxes, the full boxes output; needs a head that predicts visible boxes
set       Set NMS (CrowdDet): hard NMS where the predictions of one prior never suppress
          each other; for a head with K > 1 instances per prior (with K = 1 it is hard NMS)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchvision

from crowdet.errors import ConfigError
from crowdet.postprocess.nms import batched_adaptive_nms, greedy_rounds
from crowdet.postprocess.pairs import check_scored_boxes, overlap_pairs
from crowdet.postprocess.soft import batched_soft_nms

METHODS = ("hard", "soft", "adaptive", "visible", "set")


@dataclass
class Candidates:
    """The candidates of a batch before suppression, N of them: scores (N,), boxes (N, 4) xyxy,
    labels (N,), image (N,) int64; visible (N, 4) their visible boxes, density (N,) in [0, 1],
    prior_set (N,) int64 the prior (and pass) each came from: what the head gives."""

    scores: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor
    image: torch.Tensor
    visible: torch.Tensor | None = None
    density: torch.Tensor | None = None
    prior_set: torch.Tensor | None = None


def check_method(method: str, visible: bool, density: bool, instances: int) -> None:
    """ConfigError naming postprocess.nms when a head with these extras cannot serve `method`."""
    need = {
        "adaptive": (density, "a density branch (model.head.density: true)"),
        "visible": (visible, "visible boxes (model.head.visible: true)"),
        "set": (instances > 1, "several instances per prior (model.head.instances: 2)"),
    }
    if method not in METHODS:
        raise ConfigError(f"postprocess.nms: unknown method {method!r}, expected one of {METHODS}")
    if method in need and not need[method][0]:
        raise ConfigError(
            f"postprocess.nms: {method!r} needs a head that predicts {need[method][1]}; this "
            "model's head does not"
        )


def suppress(
    c: Candidates,
    groups: torch.Tensor,
    method: str = "hard",
    iou_threshold: float = 0.5,
    soft_method: str = "gaussian",
    soft_sigma: float = 0.5,
    max_per_group: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidates and their NMS groups (N,) int64 (image, class) -> kept indices (K,) sorted by
    score and the scores of all N after suppression (Soft-NMS decays them)."""
    if method == "soft":
        kept, decayed = batched_soft_nms(
            c.boxes, c.scores, groups, soft_method, soft_sigma, iou_threshold,
            score_threshold=0.001, max_per_group=max_per_group,
        )  # fmt: skip
        final = c.scores.clone()
        final[kept] = decayed
        return kept, final
    if method == "adaptive":
        return batched_adaptive_nms(c.boxes, c.scores, c.density, groups, iou_threshold), c.scores
    if method == "visible":
        return torchvision.ops.batched_nms(c.visible, c.scores, groups, iou_threshold), c.scores
    if method == "set":
        return batched_set_nms(c.boxes, c.scores, c.prior_set, groups, iou_threshold), c.scores
    return torchvision.ops.batched_nms(c.boxes, c.scores, groups, iou_threshold), c.scores


def batched_set_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    sets: torch.Tensor,
    idxs: torch.Tensor | None,
    iou_threshold: float = 0.5,
) -> torch.Tensor:
    """Set NMS (Chu et al., CVPR 2020): greedy hard NMS within each group of idxs (N,) int64
    (all boxes together when None) in which boxes of the same set (N,) int64 (the predictions
    of one prior) never suppress each other.

    boxes (N, 4) xyxy, scores (N,) -> kept indices (K,) int64, by decreasing score."""
    check_scored_boxes(boxes, scores, idxs)
    if sets.shape != scores.shape:
        raise ValueError(f"sets must have shape {tuple(scores.shape)}, got {tuple(sets.shape)}")
    order = torch.sort(scores, descending=True, stable=True).indices
    groups = None if idxs is None else idxs[order]
    first, second, _ = overlap_pairs(boxes[order], iou_threshold, groups)
    other = sets[order][first] != sets[order][second]
    return order[greedy_rounds(len(order), first[other], second[other])]
