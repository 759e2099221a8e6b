"""OTA: label assignment as optimal transport (Ge et al., CVPR 2021), batched and crowd-aware.

Rules, for each image of the batch (G padded targets, A priors):

1. People and ignore regions as in the max-IoU assigner.
2. Candidates (the paper's centre prior): on each level, a person's ``candidates`` priors whose
   centres are nearest its centre (as ATSS's candidates; windows of the prior grids when the
   priors lie on grids). Only these (person, prior) pairs get a cost: no (B, G, A) tensor.
3. Cost of a pair, from the detached predictions: ``cls_weight * -log(score)`` +
   ``iou_weight * -log(IoU(predicted box, person))`` + ``center_weight * centre distance /
   sqrt(prior area)`` + ``outside_cost`` when the prior's centre is not inside the person's box.
   The background's cost for a prior is ``cls_weight * -log(1 - score)``.
4. Supplies: each person gives k = max(1, floor(sum of its ``dynamic_q`` best candidate IoUs))
   labels (dynamic k); the background gives the rest, so that supply equals the demand of one
   label per candidate prior (the people's k are scaled down in an image where they exceed its
   candidate priors). Priors that are nobody's candidate are background without transport.
5. The plan: ``iters`` Sinkhorn iterations in log space with entropy ``eps`` on the sparse pairs
   (plus one background edge per candidate prior), every image at once. Each candidate prior
   goes to the supplier that sends it most (a person before the background, the lowest person
   index first, on ties).
6. Ignore regions: a prior that is not positive and whose intersection over its own area with
   some ignore region is > ``ignore_ioa`` is ``IGNORE``.
7. Every person with a positive area is learnt from at least one prior: the people the plan left
   without one take part in the low-quality rounds of crowdet.assign.common.
"""

from __future__ import annotations

import torch

from crowdet import boxes as box_ops
from crowdet.assign.atss import _candidates, _centre_inside, _centres, _window_candidates
from crowdet.assign.candidates import infer_grids
from crowdet.assign.common import (
    check_max_elements,
    low_quality_rounds,
    mark_ignored,
    start_assignment,
)
from crowdet.errors import ConfigError
from crowdet.structures import AssignResult, Predictions, Priors, Targets

__all__ = ["OTAAssigner", "sinkhorn"]

_TINY = 1e-8  # probabilities and supplies are kept above this before their log


class OTAAssigner:
    """Assign priors by optimal transport; the defaults are crowdet.config.OTAAssignConfig's."""

    uses_predictions = True

    def __init__(
        self,
        candidates: int,
        dynamic_q: int,
        eps: float,
        iters: int,
        cls_weight: float,
        iou_weight: float,
        center_weight: float,
        outside_cost: float,
        ignore_ioa: float,
        max_elements: int,
    ):
        if candidates < 1 or dynamic_q < 1 or iters < 1 or eps <= 0:
            raise ConfigError(
                f"OTA assigner needs candidates, dynamic_q, iters >= 1 and eps > 0, got "
                f"candidates={candidates}, dynamic_q={dynamic_q}, iters={iters}, eps={eps}"
            )
        check_max_elements(max_elements)
        self.candidates, self.dynamic_q, self.eps, self.iters = candidates, dynamic_q, eps, iters
        self.weights = (cls_weight, iou_weight, center_weight, outside_cost)
        self.ignore_ioa, self.max_elements = ignore_ioa, max_elements

    def __call__(
        self, priors: Priors, targets: Targets, predictions: Predictions | None = None
    ) -> AssignResult:
        """priors (A, 4), targets (B, G), predictions (B, A, C) scores and (B, A, 4) boxes
        -> AssignResult with matched (B, A) int64."""
        prior_boxes, people, regions, gt_boxes, matched, empty = start_assignment(
            priors, targets, predictions
        )
        if empty:
            return AssignResult(matched)
        num_priors = prior_boxes.shape[0]
        image, person = people.nonzero(as_tuple=True)
        if len(image) and predictions is None:
            raise ValueError("the OTA assigner ranks priors by the predictions: none were given")
        grid = infer_grids(prior_boxes, list(priors.level_sizes))
        if len(image):
            problem = self._problem(priors, grid, gt_boxes, image, person, predictions)
            _apply_plan(matched, problem, self.eps, self.iters, num_priors)
        mark_ignored(matched, prior_boxes, gt_boxes, regions, self.ignore_ioa, self.max_elements)
        iou_of_pos = _positive_iou(matched, prior_boxes, gt_boxes)
        low_quality_rounds(
            prior_boxes, gt_boxes, people, matched, iou_of_pos, self.max_elements, grid
        )
        return AssignResult(matched)

    def _problem(self, priors, grid, gt_boxes, image, person, predictions) -> dict:
        """The sparse transport problem of the batch's N people and their candidates."""
        boxes = gt_boxes[image, person]  # (N, 4)
        sizes = list(priors.level_sizes)
        prior_boxes = priors.boxes.to(gt_boxes.dtype)
        if grid is None:
            cand = _candidates(prior_boxes, boxes, sizes, self.candidates, self.max_elements)
        else:
            cand = _window_candidates(
                grid, prior_boxes, boxes, sizes, self.candidates, self.max_elements
            )
        dtype = prior_boxes.dtype
        score = predictions.scores[..., 0].to(dtype)  # (B, A) the person class
        pred = predictions.boxes.to(dtype)
        cost, iou = pair_costs(
            prior_boxes,
            boxes,
            cand,
            pred[image[:, None], cand],
            score[image[:, None], cand],
            self.weights,
        )
        supply = dynamic_k(iou, self.dynamic_q)
        return dict(
            image=image,
            person=person,
            cand=cand,
            cost=cost,
            supply=supply,
            bg_cost=self.weights[0] * -torch.log((1 - score).clamp(min=_TINY)),
        )


def pair_costs(prior_boxes, boxes, cand, pred_boxes, scores, weights):
    """Costs (N, K) of people boxes (N, 4) and their candidate priors cand (N, K), with the
    predicted boxes (N, K, 4) and scores (N, K) of those priors -> cost (N, K), IoU (N, K) of the
    predicted boxes with the people."""
    cls_w, iou_w, center_w, outside = weights
    cand_priors = prior_boxes[cand]  # (N, K, 4)
    iou = box_ops.paired_iou(pred_boxes, boxes[:, None, :])
    distance = (_centres(cand_priors) - _centres(boxes)[:, None, :]).norm(dim=-1)
    scale = box_ops.area(cand_priors).clamp(min=_TINY).sqrt()
    cost = cls_w * -torch.log(scores.clamp(min=_TINY))
    cost = cost + iou_w * -torch.log(iou.clamp(min=_TINY))
    cost = cost + center_w * distance / scale
    cost = cost + outside * (~_centre_inside(cand_priors, boxes)).float()
    return cost, iou


def dynamic_k(iou: torch.Tensor, q: int) -> torch.Tensor:
    """(N, K) candidate IoUs -> (N,) float labels each person gives: floor of the sum of its q
    best IoUs, at least 1."""
    top = iou.topk(min(q, iou.shape[1]), dim=1).values
    return top.sum(dim=1).floor().clamp(min=1)


def _apply_plan(matched, problem, eps, iters, num_priors) -> None:
    """Solve the batch's transport problem; write each candidate prior's person in matched."""
    image, cand = problem["image"], problem["cand"]
    num_people, per = cand.shape
    slot = (image[:, None] * num_priors + cand).flatten()
    slots, demander = torch.unique(slot, return_inverse=True)  # candidate priors of the batch
    num_images = matched.shape[0]
    slot_image = slots // num_priors
    supply = problem["supply"]
    demand_per_image = torch.bincount(slot_image, minlength=num_images).to(supply.dtype)
    wanted = supply.new_zeros(num_images).index_add_(0, image, supply)
    scale = (demand_per_image / wanted.clamp(min=_TINY)).clamp(max=1.0)
    supply = supply * scale[image]
    background = demand_per_image - torch.zeros_like(wanted).index_add_(0, image, supply)
    person_of_edge = torch.arange(num_people, device=cand.device).repeat_interleave(per)
    bg_cost = problem["bg_cost"].flatten()[slots]
    suppliers = torch.cat([person_of_edge, num_people + slot_image])
    demanders = torch.cat([demander, torch.arange(len(slots), device=cand.device)])
    costs = torch.cat([problem["cost"].flatten(), bg_cost])
    supplies = torch.cat([supply, background.clamp(min=0)])
    plan = sinkhorn(
        suppliers,
        demanders,
        costs,
        supplies,
        torch.ones(len(slots), device=cand.device),
        eps,
        iters,
    )
    winner = _winners(plan, suppliers, demanders, len(slots))
    is_person = winner < num_people
    person = problem["person"][winner[is_person]]
    rows, cols = slots[is_person] // num_priors, slots[is_person] % num_priors
    matched[rows, cols] = person


def sinkhorn(suppliers, demanders, costs, supply, demand, eps: float, iters: int):
    """Entropic optimal transport on a sparse bipartite graph, in log space.

    E edges: suppliers (E,) and demanders (E,) int64 indices, costs (E,) float; supply (S,) and
    demand (D,) with equal sums -> the plan (E,): exp((f_s + g_d - cost) / eps), whose sums per
    demander equal demand after the last iteration and per supplier tend to supply.
    """
    log_a = supply.clamp(min=_TINY).log()
    log_b = demand.clamp(min=_TINY).log()
    f = torch.zeros_like(log_a)
    g = torch.zeros_like(log_b)
    scaled = -costs / eps
    for _ in range(iters):
        f = eps * (log_a - _scatter_lse(g[demanders] / eps + scaled, suppliers, len(f)))
        g = eps * (log_b - _scatter_lse(f[suppliers] / eps + scaled, demanders, len(g)))
    return torch.exp((f[suppliers] + g[demanders]) / eps + scaled)


def _scatter_lse(values: torch.Tensor, group: torch.Tensor, size: int) -> torch.Tensor:
    """log(sum(exp(values))) per group -> (size,) (-inf for an empty group)."""
    top = values.new_full((size,), float("-inf"))
    top.scatter_reduce_(0, group, values, reduce="amax")
    safe = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    total = values.new_zeros(size).index_add_(0, group, (values - safe[group]).exp())
    return safe + total.log()


def _winners(plan, suppliers, demanders, num_demanders) -> torch.Tensor:
    """Per demander, the supplier of its largest share (the lowest supplier index on ties)."""
    best = plan.new_full((num_demanders,), float("-inf"))
    best.scatter_reduce_(0, demanders, plan, reduce="amax")
    top = plan == best[demanders]
    first = torch.full((num_demanders,), torch.iinfo(torch.long).max, device=plan.device)
    first.scatter_reduce_(0, demanders[top], suppliers[top], reduce="amin")
    return first


def _positive_iou(matched, prior_boxes, gt_boxes) -> torch.Tensor:
    """(B, A): the IoU of each positive prior with its person, -1 elsewhere."""
    out = prior_boxes.new_full(matched.shape, -1.0)
    rows, cols = (matched >= 0).nonzero(as_tuple=True)
    out[rows, cols] = box_ops.paired_iou(gt_boxes[rows, matched[rows, cols]], prior_boxes[cols])
    return out
