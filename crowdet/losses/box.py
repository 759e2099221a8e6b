"""Box regression losses on matched pairs, summed (callers normalise by the number of positives)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import complete_box_iou_loss, distance_box_iou_loss, generalized_box_iou_loss

IOU_LOSSES = {
    "giou": generalized_box_iou_loss,
    "diou": distance_box_iou_loss,
    "ciou": complete_box_iou_loss,
}


def box_loss(
    kind: str,
    coder,
    priors: torch.Tensor,
    regression: torch.Tensor,
    targets: torch.Tensor,
    beta: float = 0.1,
) -> torch.Tensor:
    """Sum of the box loss over P matched pairs: priors, regression, targets (P, 4) (priors and
    targets xyxy). The head's box coder decodes the regression (IoU losses) or encodes the
    targets (smooth_l1, on the regression)."""
    if kind == "smooth_l1":
        return F.smooth_l1_loss(
            regression, coder.encode(priors, targets), beta=beta, reduction="sum"
        )
    pred = coder.decode(priors, regression)
    return IOU_LOSSES[kind](pred, targets, reduction="sum", eps=1e-7)
