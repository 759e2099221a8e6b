"""FreeAnchor (Zhang et al., NeurIPS 2019): learning to match anchors by maximum likelihood.

No hard assignment: each person i has a bag A_i of the ``bag_size`` anchors of highest IoU with
it (by the anchor boxes; on equal IoU the lower anchor index first), and the loss is

    positive  -alpha * sum_i log MeanMax({P_cls(a) * P_loc(a, i) : a in A_i}) / max(1, n)
    negative  (1 - alpha) * sum_a FL(P_cls(a) * (1 - P(a -> some person))) / max(1, n * bag_size)

over the n people of the batch, where P_cls is the sigmoid score of the person class, P_loc(a, i) =
exp(-box_weight * smooth_l1(encode(a, predicted box of a) - encode(a, box_i))) (summed over the 4
deltas, ``smooth_l1_beta``; the deltas with ``delta_weights``, FreeAnchor's 10, 10, 5, 5, whatever
the head's coder: with RetinaNet's unit weights the likelihood would be near 1 for every anchor of
a bag and teach little localisation), MeanMax(X) = sum x / (1 - x) / sum 1 / (1 - x), FL(p) =
-p^gamma log(1 - p), and P(a -> some person) = max_i of the saturated linear of IoU(predicted box
of a, box_i): 0 below ``iou_low``, 1 at the person's best predicted IoU (at least iou_low), linear
between (detached). Anchors covered by an ignore region (intersection over the anchor's area >
``ignore_ioa``) take no negative term.

Batched: the bags come from windows of the prior grids (crowdet.assign.candidates: the anchors
of IoU >= BAG_IOU, then every overlapping anchor for a person with fewer than ``bag_size`` of
those; a person overlapping fewer, or priors that are not grids, rank every prior); the
predicted-box IoUs come from cells around each person (``saturated_match``); pairs are made in
blocks of at most ``max_elements``. Losses: {"pos_bag", "neg_bag"}.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from crowdet import boxes as box_ops
from crowdet.assign.candidates import _count_blocks, _expand, infer_grids, iou_pairs
from crowdet.assign.common import assign_tensors, best_target
from crowdet.structures import Batch, HeadOutput, Priors, Targets

__all__ = ["BAG_IOU", "FreeAnchorLoss", "anchor_bags", "mean_max", "saturated_match"]

BAG_IOU = 0.05  # the window pairs searched for a bag first
_EPS = 1e-6


class FreeAnchorLoss:
    """The loss of the module docstring; defaults in crowdet.config.FreeAnchorAssignConfig."""

    def __init__(
        self,
        bag_size: int,
        iou_low: float,
        focal_alpha: float,
        focal_gamma: float,
        box_weight: float,
        smooth_l1_beta: float,
        ignore_ioa: float,
        max_elements: int,
        num_pos_reducer: Callable[[torch.Tensor], torch.Tensor] | None = None,
        delta_coder=None,
    ):
        self.bag_size, self.iou_low = bag_size, iou_low
        self.alpha, self.gamma = focal_alpha, focal_gamma
        self.box_weight, self.beta = box_weight, smooth_l1_beta
        # the coder of the deltas the box likelihood is measured in (crowdet.models.coders.
        # DeltaCoder with assign.delta_weights); None: the head's own
        self.delta_coder = delta_coder
        self.ignore_ioa, self.max_elements = ignore_ioa, max_elements
        self.num_pos_reducer = num_pos_reducer  # e.g. an all-reduce mean over DDP ranks

    def __call__(
        self, outputs: HeadOutput, priors: Priors, batch: Batch, coder
    ) -> dict[str, torch.Tensor]:
        logits, regression = outputs.cls_logits[..., 0], outputs.box_regression  # (B, A)
        targets = Targets(batch.boxes, batch.valid, batch.ignore)
        prior_boxes, people, regions, gt_boxes = assign_tensors(priors, targets)
        image, person = people.nonzero(as_tuple=True)
        boxes = gt_boxes[image, person]  # (N, 4)
        with torch.no_grad():
            bags = anchor_bags(
                priors, prior_boxes, gt_boxes, people, self.bag_size, self.max_elements
            )  # (N, K)
            pred = coder.decode(prior_boxes, regression.detach())
            match = saturated_match(pred, gt_boxes, people, self.iou_low, self.max_elements)
            ioa, _ = best_target(prior_boxes, gt_boxes, regions, self.max_elements, True)
        num = torch.tensor(float(len(image)), device=logits.device)
        if self.num_pos_reducer is not None:
            num = self.num_pos_reducer(num)
        scores = logits.sigmoid()
        cls_p = scores[image[:, None], bags]  # (N, K)
        bag_priors = prior_boxes[bags]  # (N, K, 4)
        predicted = coder.decode(bag_priors, regression[image[:, None], bags])
        measure = self.delta_coder or coder
        deltas = measure.encode(bag_priors, predicted)
        target = measure.encode(bag_priors, boxes[:, None, :].expand(-1, bags.shape[1], 4))
        sl1 = F.smooth_l1_loss(deltas, target, beta=self.beta, reduction="none").sum(-1)
        bag_p = mean_max(cls_p * torch.exp(-self.box_weight * sl1))
        positive = -self.alpha * bag_p.clamp(min=_EPS).log().sum() / num.clamp(min=1)
        neg_p = (scores * (1 - match)).clamp(_EPS, 1 - _EPS)
        focal = neg_p.pow(self.gamma) * -torch.log1p(-neg_p)
        focal = focal.masked_fill(ioa > self.ignore_ioa, 0.0)
        negative = (1 - self.alpha) * focal.sum() / (num * self.bag_size).clamp(min=1)
        zero = 0.0 * (outputs.cls_logits.sum() + regression.sum())
        return {"pos_bag": positive + zero, "neg_bag": negative}


def mean_max(x: torch.Tensor) -> torch.Tensor:
    """(N, K) probabilities -> (N,) sum x / (1 - x) / sum 1 / (1 - x): the mean for equal
    values, tending to the max as one nears 1."""
    weight = 1 / (1 - x).clamp(min=_EPS)
    return (weight * x).sum(1) / weight.sum(1)


def anchor_bags(priors: Priors, prior_boxes, gt_boxes, people, bag_size, max_elements):
    """(N, K) anchor indices, K = min(bag_size, A): each person's (people (B, G), in nonzero
    order) anchors of highest IoU, then lowest index."""
    image, person = people.nonzero(as_tuple=True)
    num_priors = prior_boxes.shape[0]
    size = min(bag_size, num_priors)
    bags = torch.zeros(len(image), size, dtype=torch.long, device=prior_boxes.device)
    short = torch.ones(len(image), dtype=torch.bool, device=prior_boxes.device)
    grid = infer_grids(prior_boxes, list(priors.level_sizes))
    rank_of = torch.zeros_like(people, dtype=torch.long)
    rank_of[image, person] = torch.arange(len(image), device=people.device)
    for threshold in (BAG_IOU, 0.0):  # then every overlapping anchor, for the small people
        if grid is None or not bool(short.any()):
            break
        asked = torch.zeros_like(people)
        asked[image[short], person[short]] = True
        pairs = iou_pairs(grid, prior_boxes, gt_boxes, asked, threshold, max_elements)
        row = rank_of[pairs.image, pairs.person]
        order = _order(row, pairs.iou, pairs.prior)
        row, prior = row[order], pairs.prior[order]
        counts = torch.bincount(row, minlength=len(image))
        rank = torch.arange(len(row), device=row.device) - (counts.cumsum(0) - counts)[row]
        keep = (rank < size) & (counts >= size)[row]
        bags[row[keep], rank[keep]] = prior[keep]
        short = short & (counts < size)
    rest = short.nonzero().flatten()
    step = max(1, max_elements // max(num_priors, 1))
    for start in range(0, len(rest), step):
        rows = rest[start : start + step]
        iou = box_ops.iou(gt_boxes[image[rows], person[rows]][:, None], prior_boxes)[:, 0]
        bags[rows] = iou.neg().sort(dim=1, stable=True).indices[:, :size]
    return bags


def _order(row, iou, prior) -> torch.Tensor:
    """The order of pairs by row, then IoU (highest first), then prior index."""
    order = torch.argsort(prior, stable=True)
    order = order[torch.argsort(-iou[order], stable=True)]
    return order[torch.argsort(row[order], stable=True)]


def saturated_match(pred, gt_boxes, people, iou_low, max_elements, cell=32.0) -> torch.Tensor:
    """(B, A) max over people of the saturated linear of IoU(predicted box (B, A, 4), person):
    0 up to iou_low, 1 at the person's best IoU over the image's predictions.

    Only pairs of IoU > iou_low count, and a box reaches that with a person only if its centre
    lies within (1 + 1 / iou_low) / 2 of the person's width (height) of the person's centre: the
    predictions are sorted into square cells of side ``cell`` by centre, and each person meets
    the predictions of the cells around it, in blocks of at most max_elements pairs.
    """
    num_images, num_priors = pred.shape[:2]
    image, person = people.nonzero(as_tuple=True)
    out = pred.new_zeros(num_images * num_priors)
    if len(image) == 0 or num_priors == 0:
        return out.view(num_images, num_priors)
    pairs = _near_pairs(pred, gt_boxes[image, person], image, iou_low, max_elements, cell)
    rows, flat, iou = pairs  # person row, flat prediction index, IoU > iou_low
    top = pred.new_full((len(image),), iou_low + 1e-12)
    top.scatter_reduce_(0, rows, iou, reduce="amax")
    p = ((iou - iou_low) / (top[rows] - iou_low)).clamp(0, 1)
    out.scatter_reduce_(0, flat, p, reduce="amax")
    return out.view(num_images, num_priors)


def _near_pairs(pred, boxes, image, iou_low, max_elements, cell):
    """(person row, flat prediction index b * A + a, IoU) of the pairs of IoU > iou_low."""
    num_images, num_priors = pred.shape[:2]
    reach = (boxes[:, 2:] - boxes[:, :2]) * (1 + 1 / max(iou_low, 1e-6)) / 2  # (N, 2)
    mid = (boxes[:, :2] + boxes[:, 2:]) / 2
    # cells cover the people's reach; a centre outside falls in a border cell (more pairs, the
    # same result)
    lo = (mid - reach).amin(0).floor()
    size = (((mid + reach).amax(0) - lo) / cell).long() + 1
    nx, ny = int(size[0]), int(size[1])
    centre = torch.nan_to_num((pred[..., :2] + pred[..., 2:]) / 2)  # (B, A, 2)
    cells = ((centre - lo) / cell).clamp(-1, max(nx, ny)).long()
    ix, iy = cells[..., 0].clamp(0, nx - 1), cells[..., 1].clamp(0, ny - 1)
    key = (torch.arange(num_images, device=pred.device)[:, None] * ny + iy) * nx + ix
    key, order = key.flatten().sort()
    first = torch.searchsorted(key, torch.arange(num_images * ny * nx + 1, device=pred.device))
    c0 = ((mid - reach - lo) / cell).floor().long()
    c1 = ((mid + reach - lo) / cell).floor().long()
    x0, x1 = c0[:, 0].clamp(0, nx - 1), c1[:, 0].clamp(0, nx - 1)
    y0, y1 = c0[:, 1].clamp(0, ny - 1), c1[:, 1].clamp(0, ny - 1)
    rows_per = (y1 - y0 + 1).clamp(min=0)
    who, local = _expand(rows_per)  # one entry per (person, row of cells)
    band = (image[who] * ny + y0[who] + local) * nx
    start, stop = first[band + x0[who]], first[band + x1[who] + 1]
    count = stop - start
    parts = []
    for sl in _count_blocks(count, max_elements):
        entry, rank = _expand(count[sl])
        person_row = who[sl][entry]
        flat = order[start[sl][entry] + rank]
        b = flat // num_priors
        iou = box_ops.paired_iou(boxes[person_row], pred[b, flat % num_priors])
        keep = iou > iou_low
        parts.append((person_row[keep], flat[keep], iou[keep]))
    if not parts:
        empty = torch.zeros(0, dtype=torch.long, device=pred.device)
        return empty, empty, pred.new_zeros(0)
    return tuple(torch.cat(v) for v in zip(*parts))
