"""Box regression losses on matched pairs, summed (callers normalise by the number of positives)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import complete_box_iou_loss, distance_box_iou_loss, generalized_box_iou_loss

from crowdet import boxes as B

IOU_LOSSES = {
    "giou": generalized_box_iou_loss,
    "diou": distance_box_iou_loss,
    "ciou": complete_box_iou_loss,
}


def box_loss(
    kind: str, priors: torch.Tensor, deltas: torch.Tensor, targets: torch.Tensor, beta: float = 0.1
) -> torch.Tensor:
    """Sum of the box loss over P matched pairs: priors, deltas, targets (P, 4) (targets xyxy)."""
    if kind == "smooth_l1":
        return F.smooth_l1_loss(deltas, B.encode(priors, targets), beta=beta, reduction="sum")
    pred = B.decode(priors, deltas)
    return IOU_LOSSES[kind](pred, targets, reduction="sum", eps=1e-7)
