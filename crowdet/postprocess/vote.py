"""Box voting: each box kept by NMS becomes the score-weighted mean of the candidates around it.

Dense detectors put several boxes on one person; NMS keeps the best-scored one and throws the
others' placement away. Voting (Gidaris & Komodakis, ICCV 2015) averages the kept box with every
candidate of its group whose IoU with it is > `iou_threshold`, weighted by the candidates' scores,
which steadies the placement. In a crowd the threshold must stay high, or a neighbour's box joins
the vote: boxes of two different people rarely overlap that much.
"""

from __future__ import annotations

import torch

from crowdet.postprocess.pairs import PAIR_BLOCK, check_scored_boxes, overlap_pairs

__all__ = ["box_voting"]


def box_voting(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    kept: torch.Tensor,
    groups: torch.Tensor | None = None,
    iou_threshold: float = 0.8,
    max_elements: int = PAIR_BLOCK,
) -> torch.Tensor:
    """boxes (N, 4) xyxy candidates, scores (N,) their scores (>= 0), kept (K,) int64 indices of
    the boxes NMS kept, groups (N,) int64 (image / class; None: one group) -> (K, 4) voted boxes.

    Voted box k = sum_j s_j b_j / sum_j s_j over j = kept[k] and every candidate j of the same group
    with IoU(b_j, b_kept[k]) > iou_threshold.
    """
    check_scored_boxes(boxes, scores, groups)
    if not 0.0 <= iou_threshold < 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1), got {iou_threshold}")
    first, second, _ = overlap_pairs(boxes, iou_threshold, groups, max_elements)
    slot = torch.full((len(boxes),), -1, dtype=torch.long, device=boxes.device)
    slot[kept] = torch.arange(len(kept), device=boxes.device)
    voter = torch.cat([second, first])  # each pair votes both ways...
    target = slot[torch.cat([first, second])]
    mine = target >= 0  # ...for the end that was kept
    voter, target = voter[mine], target[mine]
    weights = scores[voter].to(boxes.dtype)
    own = scores[kept].to(boxes.dtype)  # the kept box votes for itself
    num = (boxes[kept] * own[:, None]).index_add(0, target, boxes[voter] * weights[:, None])
    den = own.index_add(0, target, weights)
    some = den[:, None] > 0  # all weights 0: the box stays as it was
    return torch.where(some, num / torch.where(some, den[:, None], 1.0), boxes[kept])
