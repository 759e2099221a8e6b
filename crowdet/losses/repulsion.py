"""Repulsion loss (Wang et al., "Repulsion Loss: Detecting Pedestrians in a Crowd", CVPR 2018).

For the P positive priors of a batch, each with its predicted box B (decoded, with gradients)
and its assigned person:

- RepGT: the repulsion target of a positive is the other person (not its own, not an ignore
  region) whose box overlaps the prior most by IoU (the lowest index on ties; none when no other
  person overlaps the prior). The term is Smooth_ln(IoG(B, target)), IoG = intersection over the
  target's area, summed and divided by the loss's normaliser (the positives).
- RepBox: every pair of positives of the same image assigned to different people adds
  Smooth_ln(IoU(B_i, B_j)); the sum over unordered pairs is divided by the number of such pairs
  whose boxes overlap (at least 1).

Smooth_ln(x) = -ln(1 - x) for x <= sigma, (x - sigma) / (1 - sigma) - ln(1 - sigma) above.
Pairwise work is done in blocks of at most ``max_elements`` entries.
"""

from __future__ import annotations

import math

import torch

from crowdet import boxes as box_ops
from crowdet.structures import Batch

__all__ = ["RepulsionLoss", "rep_box", "rep_gt", "smooth_ln"]


class RepulsionLoss:
    def __init__(self, gt_weight, box_weight, sigma_gt=0.5, sigma_box=0.5, max_elements=2**22):
        self.gt_weight, self.box_weight = gt_weight, box_weight
        self.sigma_gt, self.sigma_box, self.max_elements = sigma_gt, sigma_box, max_elements

    def __call__(self, pred, priors, image, person, batch: Batch, norm) -> dict[str, torch.Tensor]:
        """pred, priors (P, 4) of the positives of images image (P,) assigned to person (P,)
        -> {"rep_gt", "rep_box"} for the non-zero weights."""
        out = {}
        people = batch.valid & ~batch.ignore
        if self.gt_weight:
            total = rep_gt(
                pred, priors, image, person, batch.boxes, people, self.sigma_gt, self.max_elements
            )
            out["rep_gt"] = self.gt_weight * total / norm
        if self.box_weight:
            out["rep_box"] = self.box_weight * rep_box(
                pred, image, person, self.sigma_box, self.max_elements
            )
        return out


def smooth_ln(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """The smoothed -ln(1 - x) of the module docstring, x in [0, 1]."""
    low = -torch.log1p(-x.clamp(max=sigma))
    high = (x - sigma) / (1 - sigma) - math.log(1 - sigma)
    return torch.where(x <= sigma, low, high)


def rep_gt(pred, priors, image, person, gt_boxes, people, sigma, max_elements=2**22):
    """Sum over positives of Smooth_ln(IoG(pred, repulsion target)); gt_boxes (B, G, 4),
    people (B, G) bool."""
    num_gt = gt_boxes.shape[1]
    total = pred.new_zeros(())
    step = max(1, max_elements // max(num_gt, 1))
    for start in range(0, len(pred), step):
        sl = slice(start, start + step)
        img, own = image[sl], person[sl]
        iou = box_ops.paired_iou(priors[sl, None], gt_boxes[img])  # (p, G)
        others = people[img].clone()
        others[torch.arange(len(img), device=img.device), own] = False
        iou = iou.masked_fill(~others, -1.0)
        best, target = iou.max(dim=1)  # the first of equal values: the lowest index
        has = best > 0
        g = gt_boxes[img[has], target[has]]
        iog = box_ops.paired_intersection(pred[sl][has], g) / (box_ops.area(g) + box_ops.EPS)
        total = total + smooth_ln(iog, sigma).sum()
    return total


def rep_box(pred, image, person, sigma, max_elements=2**22):
    """Sum over unordered pairs of positives of one image and different people of
    Smooth_ln(IoU), divided by the number of those pairs that overlap (at least 1)."""
    total, count = pred.new_zeros(()), pred.new_zeros(())
    n = len(pred)
    step = max(1, max_elements // max(n, 1))
    index = torch.arange(n, device=pred.device)
    for start in range(0, n, step):
        sl = slice(start, start + step)
        iou = box_ops.paired_iou(pred[sl, None], pred[None])  # (p, P)
        pair = (image[sl, None] == image[None]) & (person[sl, None] != person[None])
        pair &= index[sl, None] < index[None]
        total = total + smooth_ln(iou[pair], sigma).sum()
        count = count + (iou[pair] > 0).sum()
    return total / count.clamp(min=1)
