"""The EMD loss of multiple instance prediction (CrowdDet, Chu et al., CVPR 2020), one-stage.

Each prior predicts K people (a head with `instances` K: outputs (B, A*K, ...) with the K
predictions of a prior in a row). The prior's K targets are its assigned person (the run's
assigner: ignore regions, low-quality matches and ATSS work as for K = 1) and the people with
the next largest IoU with the prior, each a person when that IoU reaches `pos_iou`, else the
background; a prior the assigner calls background has K background targets, one it ignores no
loss. The loss of a prior is the smallest, over the K! ways of pairing its predictions with its
targets, of the sum over pairs of the focal classification loss (target 1 for a person, 0 for
the background) plus box_weight times the box loss of the pairs with a person. The sum over
priors is normalised by the number of person targets in the batch (at least 1).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from torchvision.ops import sigmoid_focal_loss

from crowdet import boxes as B
from crowdet.assign.codes import BACKGROUND
from crowdet.losses.box import IOU_LOSSES
from crowdet.structures import Assigner, Batch, HeadOutput, Priors, Targets


class EMDLoss:
    def __init__(
        self,
        assigner: Assigner,
        instances: int = 2,
        pos_iou: float = 0.5,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        box: str = "giou",
        box_weight: float = 2.0,
        num_pos_reducer: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        if box not in IOU_LOSSES:
            raise ValueError(f"the EMD loss takes an IoU box loss {tuple(IOU_LOSSES)}, got {box!r}")
        self.assigner, self.k, self.pos_iou = assigner, instances, pos_iou
        self.alpha, self.gamma = focal_alpha, focal_gamma
        self.box, self.box_weight = box, box_weight
        self.num_pos_reducer = num_pos_reducer

    def __call__(
        self, outputs: HeadOutput, priors: Priors, batch: Batch, coder
    ) -> dict[str, torch.Tensor]:
        """Head outputs cls_logits (B, A*K, 1), box_regression (B, A*K, 4), their priors (A*K)
        -> {"cls", "box"} scalars."""
        k = self.k
        bsz = outputs.cls_logits.shape[0]
        once = single_priors(priors, k)  # each prior once: (A, 4)
        anchors = once.boxes
        gt_boxes, gt = padded_targets(batch)
        with torch.no_grad():
            targets, labels = self.targets(once, gt)  # (B, A, K), (B, A, K)
        logits = outputs.cls_logits.view(bsz, -1, k)  # one class
        regression = outputs.box_regression.view(bsz, -1, k, 4)
        live = labels[..., 0] >= 0  # not ignored
        num_pos = (labels == 1).sum().float()
        if self.num_pos_reducer is not None:
            num_pos = self.num_pos_reducer(num_pos)
        norm = num_pos.clamp(min=1.0)
        b, a = live.nonzero(as_tuple=True)
        cls_cost, box_cost = emd_costs(
            logits[b, a], regression[b, a], anchors[a], gt_boxes[b[:, None], targets[b, a]],
            labels[b, a], coder, self.alpha, self.gamma, self.box,
        )  # fmt: skip
        cls, box = emd_min(cls_cost, self.box_weight * box_cost)
        zero = 0.0 * (outputs.cls_logits.sum() + outputs.box_regression.sum())
        return {"cls": cls.sum() / norm + zero, "box": box.sum() / norm}

    def targets(self, priors: Priors, gt: Targets) -> tuple[torch.Tensor, torch.Tensor]:
        """priors (A) each once, targets with G >= 1 -> target person (B, A, K) int64 (0 where
        none) and label (B, A, K): 1 a person, 0 the background, -1 ignored (the whole prior)."""
        matched = self.assigner(priors, gt).matched
        people = gt.valid & ~gt.ignore
        anchors = priors.boxes[None].expand(len(gt.boxes), -1, -1)
        iou = B.iou(anchors, gt.boxes)  # (B, A, G)
        iou = torch.where(people[:, None, :], iou, -1.0)
        first = matched.clamp(min=0)
        iou.scatter_(2, first[..., None], -1.0)  # the assigned person is the first target
        g = iou.shape[2]
        pad = max(0, self.k - 1 - g)
        iou = torch.nn.functional.pad(iou, (0, pad), value=-1.0)
        top, idx = iou.topk(self.k - 1, dim=2)
        targets = torch.cat([first[..., None], idx.clamp(max=g - 1)], dim=2)
        labels = torch.cat([(matched >= 0)[..., None], top >= self.pos_iou], dim=2).long()
        labels[matched < 0] = 0
        labels[(matched < 0) & (matched != BACKGROUND)] = -1
        return targets, labels


def single_priors(priors: Priors, k: int) -> Priors:
    """The priors of a head with K instances (each repeated K times in a row), each once."""
    strides = None if priors.strides is None else priors.strides[::k]
    return Priors(priors.boxes[::k], [n // k for n in priors.level_sizes], strides)


def padded_targets(batch: Batch) -> tuple[torch.Tensor, Targets]:
    """The batch's boxes and Targets with at least one (invalid) row per image, so that a
    batch without annotations still indexes."""
    boxes, valid, ignore = batch.boxes, batch.valid, batch.ignore
    if boxes.shape[1] == 0:
        boxes = boxes.new_zeros(len(boxes), 1, 4)
        valid = ignore = torch.zeros(len(boxes), 1, dtype=torch.bool, device=boxes.device)
    return boxes, Targets(boxes, valid, ignore)


def emd_costs(logits, regression, anchors, gt, labels, coder, alpha, gamma, box):
    """The cost of pairing prediction i with target j of each of N priors.

    logits (N, K), regression (N, K, 4), anchors (N, 4), gt (N, K, 4) the target people's
    boxes, labels (N, K) 1 person / 0 background -> cls (N, K, K) focal loss of prediction i
    against label j, box (N, K, K) the box loss of prediction i against person j (0 against
    the background)."""
    n, k = labels.shape
    x = logits[:, :, None].expand(n, k, k)
    y = labels[:, None, :].expand(n, k, k).to(logits.dtype)
    cls = sigmoid_focal_loss(x, y, alpha, gamma, reduction="none")
    pred = coder.decode(anchors[:, None, :].expand(n, k, 4), regression)  # (N, K, 4)
    pairs_pred = pred[:, :, None, :].expand(n, k, k, 4)
    pairs_gt = gt[:, None, :, :].expand(n, k, k, 4)
    person = y > 0
    box_cost = torch.zeros_like(cls)
    if bool(person.any()):
        loss = IOU_LOSSES[box](pairs_pred[person], pairs_gt[person], reduction="none", eps=1e-7)
        box_cost = box_cost.masked_scatter(person, loss)
    return cls, box_cost


def emd_min(cls: torch.Tensor, box: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cls, box (N, K, K) pairing costs -> the (N,) cls and box parts of the cheapest of the K!
    pairings of each prior (prediction i with target perm[i])."""
    k = cls.shape[1]
    perms = torch.tensor(list(itertools.permutations(range(k))), device=cls.device)  # (P, K)
    rows = torch.arange(k, device=cls.device)
    cls_p = cls[:, rows[None, :], perms].sum(2)  # (N, P)
    box_p = box[:, rows[None, :], perms].sum(2)
    best = (cls_p + box_p).argmin(dim=1, keepdim=True)
    return cls_p.gather(1, best)[:, 0], box_p.gather(1, best)[:, 0]
