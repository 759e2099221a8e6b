"""The crowd density of a person (Adaptive NMS, Liu et al., CVPR 2019): its largest IoU with
another person of the image, what the density branch of a head learns and Adaptive NMS uses as
the suppression threshold of the kept box."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from crowdet import boxes as B


def person_density(boxes: torch.Tensor, people: torch.Tensor) -> torch.Tensor:
    """boxes (B, G, 4) xyxy, people (B, G) bool -> (B, G) the largest IoU of each person with
    another person of its image (0 for a person alone, and for non-people rows)."""
    if boxes.shape[1] == 0:
        return boxes.new_zeros(boxes.shape[:2])
    iou = B.iou(boxes, boxes)  # (B, G, G)
    pair = people[:, :, None] & people[:, None, :]
    pair &= ~torch.eye(boxes.shape[1], dtype=torch.bool, device=boxes.device)
    return torch.where(pair, iou, 0.0).amax(dim=2)


def density_loss(logits: torch.Tensor, targets: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """Sum over P positive priors of smooth-L1 between the predicted density sigmoid(logits)
    (P,) and the density of their person targets (P,)."""
    return F.smooth_l1_loss(logits.sigmoid(), targets, beta=beta, reduction="sum")
