"""Quality focal loss (Li et al., "Generalized Focal Loss", NeurIPS 2020).

The classification target of a positive prior is the IoU of its (detached) predicted box with its
person instead of 1, so the score ranks detections by how well they are localised; negatives have
target 0. The loss is BCE scaled by |target - sigmoid(logit)|^beta, summed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def quality_focal_loss(logits: torch.Tensor, targets: torch.Tensor, beta: float = 2.0):
    """Sum over elements: logits and soft targets in [0, 1] of the same shape."""
    scale = (targets - logits.sigmoid()).abs().pow(beta)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (bce * scale).sum()
