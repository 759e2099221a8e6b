"""What every assigner shares: argument checks, the people and ignore regions of the targets,
the best target of each prior, ignore marking and the low-quality rounds.

Low-quality rounds (``low_quality_rounds``): every person is learnt from at least one prior, even
in crowds where several people share the same best prior. The people still without a positive
prior take part in rounds:

- A prior is *locked* when it is the best positive prior (highest IoU, then lowest index) of a
  person that had positives before the rounds, or when it was won in an earlier round. Every
  other prior is *free*: negatives, ``IGNORE`` priors, and the surplus positives of people who
  keep their locked prior.
- Each unmatched person proposes its best free prior: the highest IoU; among priors it does not
  overlap at all, the one with the highest generalised IoU (the least distant one); the lowest
  prior index on ties.
- A prior proposed by several people goes to the one that overlaps it most (the lowest person
  index on ties). It becomes positive for the winner and locked.
- Rounds repeat until every person is matched or no proposal is left.

Guarantee: each round matches at least one person in every image that still has an unmatched
person and a free prior, and no round takes away a person's last positive. So after at most G
rounds every person with a positive area has a positive prior whenever the image has at least as
many priors as people (each matched person locks exactly one prior). With more people than
priors, the people who lost every contest stay unmatched. Only unmatched people enter the rounds,
and their match quality with the priors is computed once when it fits in ``max_elements`` (else
again in each round), so the few rounds a crowd needs are cheap.

Memory: pairwise (image, target, prior) tensors are built in blocks of at most ``max_elements``
entries, first over images, then over priors, with only the targets concerned (people for IoU,
ignore regions for IoA, unmatched people in the rounds). The smallest block is one image by one
prior by those targets; peak memory is a few times ``4 * max_elements`` bytes. Everything stays
on the device of the priors.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from crowdet import boxes as box_ops
from crowdet.assign.candidates import iou_pairs
from crowdet.assign.codes import BACKGROUND, IGNORE
from crowdet.structures import Predictions, Priors, Targets

ROUND_IOU = 0.0  # the candidate pairs a grid gives the low-quality rounds: every overlap

__all__ = [
    "ROUND_IOU",
    "all_background",
    "assign_tensors",
    "best_target",
    "check_assign_inputs",
    "check_max_elements",
    "low_quality_rounds",
    "mark_ignored",
    "match_quality",
]


def check_assign_inputs(priors: Priors, targets: Targets, predictions: Predictions | None) -> None:
    """The argument checks of the assigner contract: ValueError naming the bad one."""
    boxes, sizes = priors.boxes, list(priors.level_sizes)
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"priors must have shape (A, 4), got {tuple(boxes.shape)}")
    if sum(sizes) != boxes.shape[0] or min(sizes, default=0) < 0:
        raise ValueError(f"level_sizes {sizes} must be >= 0 and sum to the {boxes.shape[0]} priors")
    if priors.strides is not None and len(priors.strides) != len(priors.boxes):
        raise ValueError(
            f"strides of {len(priors.strides)} priors for {len(priors.boxes)} prior boxes"
        )
    valid, ignore = targets.valid, targets.ignore
    if valid.dim() != 2 or ignore.shape != valid.shape:
        raise ValueError(
            f"valid and ignore must both have shape (B, G), got {tuple(valid.shape)} "
            f"and {tuple(ignore.shape)}"
        )
    for name, value in (("boxes", targets.boxes), ("visible", targets.visible)):
        if value is not None and value.shape != (*valid.shape, 4):
            raise ValueError(
                f"target {name} must have shape (B, G, 4) = {(*valid.shape, 4)}, "
                f"got {tuple(value.shape)}"
            )
    if predictions is not None:
        _check_predictions(predictions, valid.shape[0], boxes.shape[0])


def _check_predictions(predictions: Predictions, num_images: int, num_priors: int) -> None:
    scores, boxes = predictions.scores, predictions.boxes
    if scores.dim() != 3 or scores.shape[:2] != (num_images, num_priors):
        raise ValueError(
            f"predicted scores must have shape (B, A, C) with (B, A) = "
            f"{(num_images, num_priors)}, got {tuple(scores.shape)}"
        )
    if boxes.shape != (num_images, num_priors, 4):
        raise ValueError(
            f"predicted boxes must have shape (B, A, 4) = {(num_images, num_priors, 4)}, "
            f"got {tuple(boxes.shape)}"
        )


def check_max_elements(max_elements: int) -> None:
    if max_elements < 1:
        raise ValueError(f"max_elements must be >= 1, got {max_elements}")


def assign_tensors(priors: Priors, targets: Targets):
    """-> prior boxes (A, 4) in float32 or wider, the people (B, G) bool (valid, not ignore,
    positive area), the ignore regions (B, G) bool and the target boxes (B, G, 4), all on the
    device of the priors and the boxes in the priors' dtype."""
    device = priors.boxes.device
    prior_boxes = priors.boxes.to(torch.promote_types(priors.boxes.dtype, torch.float32))
    gt_boxes = targets.boxes.to(device=device, dtype=prior_boxes.dtype)
    valid = targets.valid.to(device=device, dtype=torch.bool)
    ignore = targets.ignore.to(device=device, dtype=torch.bool)
    people = valid & ~ignore & (box_ops.area(gt_boxes) > 0)
    return prior_boxes, people, valid & ignore, gt_boxes


def all_background(num_images: int, num_priors: int, device) -> torch.Tensor:
    """(B, A) int64, every prior BACKGROUND."""
    return torch.full((num_images, num_priors), BACKGROUND, dtype=torch.long, device=device)


def start_assignment(
    priors: Priors, targets: Targets, predictions: Predictions | None, needs_strides: str = ""
):
    """What every assigner begins with: the inputs checked (`needs_strides`: the assigner's name,
    for the error when the priors carry no strides), `assign_tensors`, and every prior
    BACKGROUND -> (prior_boxes, people, regions, gt_boxes, matched (B, A), empty) with empty True
    when there is no image, person or prior to assign."""
    check_assign_inputs(priors, targets, predictions)
    if needs_strides and priors.strides is None:
        raise ValueError(f"{needs_strides} needs the strides of the priors (Priors.strides)")
    prior_boxes, people, regions, gt_boxes = assign_tensors(priors, targets)
    num_images, num_gt = people.shape
    matched = all_background(num_images, prior_boxes.shape[0], prior_boxes.device)
    empty = num_images == 0 or num_gt == 0 or prior_boxes.shape[0] == 0
    return prior_boxes, people, regions, gt_boxes, matched, empty


def mark_ignored(matched, priors, gt_boxes, regions, ignore_ioa, max_elements) -> None:
    """In place on matched (B, A): a prior that is not positive and whose intersection over its
    own area with some ignore region (regions (B, G) bool) is > ignore_ioa becomes IGNORE."""
    if not bool(regions.any()):
        return
    max_ioa, _ = best_target(priors, gt_boxes, regions, max_elements, over_prior=True)
    matched.masked_fill_((max_ioa > ignore_ioa) & (matched < 0), IGNORE)


def match_quality(gt_boxes: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """How well each prior suits each target, for choosing low-quality matches.

    gt_boxes (b, U, 4) and priors (a, 4), xyxy -> (b, U, a): the IoU where it is > 0; else
    GIoU - 1 = -1 - (enclosing area - union) / enclosing area, in (-2, -1], which ranks the priors
    that do not overlap a target by how far they are from it. Never NaN, even for zero-area boxes.
    """
    iou = box_ops.iou(gt_boxes, priors[None])
    return torch.where(iou > 0, iou, box_ops.giou(gt_boxes, priors[None]) - 1.0)


def _blocks(
    num_images: int, per_prior: int, num_priors: int, max_elements: int
) -> Iterator[tuple[slice, slice]]:
    """Yield (image slice, prior slice) blocks covering (num_images, num_priors).

    A block holds at most max(max_elements, per_prior) entries, where an (image, prior) pair
    costs ``per_prior`` entries (one per target).
    """
    per_image = max(per_prior, 1) * num_priors
    if per_image <= max_elements:
        step_images, step_priors = max(1, max_elements // per_image), num_priors
    else:
        step_images, step_priors = 1, max(1, max_elements // max(per_prior, 1))
    for b0 in range(0, num_images, step_images):
        for a0 in range(0, num_priors, step_priors):
            yield slice(b0, b0 + step_images), slice(a0, a0 + step_priors)


def best_target(priors, gt_boxes, members, max_elements, over_prior):
    """For each prior, the member target of highest IoU, or of highest intersection over the
    prior's area when ``over_prior`` (the lowest index on ties).

    priors (A, 4), gt_boxes (B, G, 4), members (B, G) bool -> value (B, A) float (-1 for IoU, 0
    for IoA where an image has no member) and target index (B, A) int64. Only the members enter
    the pairwise blocks (padding, and people or regions when the other kind is asked for, do not).
    """
    num_images, num_priors = members.shape[0], priors.shape[0]
    fill = 0.0 if over_prior else -1.0
    value = priors.new_full((num_images, num_priors), fill)
    index = torch.zeros(num_images, num_priors, dtype=torch.long, device=priors.device)
    who = _compact(members)  # (B, K)
    if who.shape[1] == 0:
        return value, index
    boxes = gt_boxes.gather(1, who[..., None].expand(-1, -1, 4))
    outsider = ~members.gather(1, who)[:, :, None]
    for bs, ps in _blocks(num_images, who.shape[1], num_priors, max_elements):
        g, p = boxes[bs, :, None, :], priors[None, None, ps, :]
        ratio = box_ops.paired_ioa(p, g) if over_prior else box_ops.paired_iou(g, p)
        best, best_k = ratio.masked_fill_(outsider[bs], fill).max(dim=1)
        value[bs, ps] = best
        index[bs, ps] = who[bs].gather(1, best_k)
    return value, index


def low_quality_rounds(priors, gt_boxes, people, matched, max_iou, max_elements, grid=None):
    """The rounds of the module docstring, in place on matched (B, A).

    priors (A, 4), gt_boxes (B, G, 4), people (B, G) bool; max_iou (B, A): for each positive
    prior, its IoU with its person (it picks the prior each matched person keeps); grid: the
    priors' grid (crowdet.assign.candidates) or None. With a grid, a person's proposal comes from
    the priors it overlaps when one of them is free (a prior it does not overlap ranks below
    them, so the proposal is the same), else from every prior.
    """
    num_images, num_gt = people.shape
    num_priors = priors.shape[0]
    anchor = _best_positive_prior(matched, max_iou, num_gt)
    locked = torch.zeros(num_images, num_priors + 1, dtype=torch.bool, device=priors.device)
    locked.scatter_(1, anchor, True)
    locked = locked[:, :num_priors].contiguous()
    pending = people & (anchor == num_priors)
    image = torch.arange(num_images, device=priors.device)[:, None]
    who = _compact(pending)  # (B, U) the people without a positive, padded
    boxes = gt_boxes.gather(1, who[..., None].expand(-1, -1, 4))
    cached, pairs = None, None
    if grid is not None and bool(pending.any()):
        pairs = iou_pairs(grid, priors, gt_boxes, pending, ROUND_IOU, max_elements)
    elif num_images * who.shape[1] * num_priors <= max_elements:  # reuse it in every round
        cached = match_quality(boxes, priors)
    for _ in range(num_gt):
        if not bool(pending.any()):
            break
        if cached is None:  # only the people still unmatched enter the round
            who = _compact(pending)
            boxes = gt_boxes.gather(1, who[..., None].expand(-1, -1, 4))
        if pairs is None:
            key, prior = _best_free_prior(
                priors, boxes, pending.gather(1, who), ~locked, max_elements, cached
            )
        else:
            key, prior = _pair_proposals(priors, pairs, boxes, who, pending, ~locked, max_elements)
        win = _contest_winners(key, prior, num_priors)
        if not bool(win.any()):
            break
        rows, cols = image.expand_as(prior)[win], prior[win]
        matched[rows, cols] = who[win]
        locked[rows, cols] = True
        pending[rows, who[win]] = False


def _pair_proposals(priors, pairs, boxes, who, pending, free, max_elements):
    """`_best_free_prior` of the pending people who (B, U) from their candidate pairs, from every
    prior for those without a free prior among their pairs."""
    key, prior = _best_free_pair(pairs, pending, free)
    key, prior = key.gather(1, who), prior.gather(1, who)
    asks = pending.gather(1, who)
    key = key.masked_fill(~asks, float("-inf"))
    rest = asks & (key == float("-inf"))
    if bool(rest.any()):
        sub = _compact(rest)  # (B, V) positions in who
        sub_boxes = boxes.gather(1, sub[..., None].expand(-1, -1, 4))
        asked = rest.gather(1, sub)
        k2, p2 = _best_free_prior(priors, sub_boxes, asked, free, max_elements)
        key.scatter_(1, sub, torch.where(asked, k2, key.gather(1, sub)))
        prior.scatter_(1, sub, torch.where(asked, p2, prior.gather(1, sub)))
    return key, prior


def _best_free_pair(pairs, pending, free):
    """Each pending person's free candidate of highest IoU (lowest prior index on ties)
    -> key (B, G) float (-inf for none) and prior (B, G) int64."""
    num_images, num_gt = pending.shape
    num_priors = free.shape[1]
    ok = pending[pairs.image, pairs.person] & free[pairs.image, pairs.prior]
    group = (pairs.image * num_gt + pairs.person)[ok]
    iou, prior = pairs.iou[ok], pairs.prior[ok]
    best = pairs.iou.new_full((num_images * num_gt,), float("-inf"))
    best.scatter_reduce_(0, group, iou, reduce="amax")
    top = iou == best[group]
    first = torch.full(best.shape, num_priors, dtype=torch.long, device=best.device)
    first.scatter_reduce_(0, group[top], prior[top], reduce="amin")
    first[first == num_priors] = 0
    return best.view(num_images, num_gt), first.view(num_images, num_gt)


def _best_positive_prior(matched: torch.Tensor, max_iou: torch.Tensor, num_gt: int) -> torch.Tensor:
    """matched and max_iou (B, A) -> (B, G) int64: each person's positive prior of highest IoU
    (lowest index on ties), or A for a person without positives."""
    num_images, num_priors = matched.shape
    positive = matched >= 0
    image = torch.arange(num_images, device=matched.device)[:, None]
    group = (image * num_gt + matched.clamp(min=0))[positive]
    best = max_iou.new_full((num_images * num_gt,), float("-inf"))
    best.scatter_reduce_(0, group, max_iou[positive], reduce="amax")
    is_best = max_iou[positive] == best[group]
    index = torch.arange(num_priors, device=matched.device).expand_as(matched)[positive]
    first = torch.full_like(best, num_priors, dtype=torch.long)
    first.scatter_reduce_(0, group[is_best], index[is_best], reduce="amin")
    return first.view(num_images, num_gt)


def _compact(pending: torch.Tensor) -> torch.Tensor:
    """pending (B, G) bool -> (B, U) int64 person indices, the pending ones first in index order,
    U = the largest number of pending people in an image."""
    order = torch.argsort((~pending).to(torch.uint8), dim=1, stable=True)
    return order[:, : int(pending.sum(dim=1).max())]


def _best_free_prior(priors, boxes, pending, free, max_elements, cached=None):
    """Each pending person's best free prior by `match_quality`.

    priors (A, 4), boxes (B, U, 4), pending (B, U) bool, free (B, A) bool, cached (B, U, A) the
    match quality of boxes and priors if already known
    -> key (B, U) float (-inf where there is no proposal), prior (B, U) int64.
    """
    num_images, num_people = pending.shape
    key = priors.new_full((num_images, num_people), float("-inf"))
    prior = torch.zeros(num_images, num_people, dtype=torch.long, device=priors.device)
    for bs, ps in _blocks(num_images, num_people, priors.shape[0], max_elements):
        if cached is None:
            quality = match_quality(boxes[bs], priors[ps])
        else:
            quality = cached[bs, :, ps].clone()
        allowed = pending[bs, :, None] & free[bs, None, ps]
        block_key, block_prior = quality.masked_fill_(~allowed, float("-inf")).max(dim=2)
        better = block_key > key[bs]
        key[bs] = torch.where(better, block_key, key[bs])
        prior[bs] = torch.where(better, block_prior + ps.start, prior[bs])
    return key, prior


def _contest_winners(key: torch.Tensor, prior: torch.Tensor, num_priors: int) -> torch.Tensor:
    """key and prior (B, U) -> (B, U) bool: the proposals that win their prior (highest key,
    then lowest position); -inf keys are no proposal."""
    num_images, num_people = key.shape
    proposes = key > float("-inf")
    image = torch.arange(num_images, device=key.device)[:, None]
    slot = image * num_priors + prior
    top = key.new_full((num_images * num_priors,), float("-inf"))
    top.scatter_reduce_(0, slot[proposes], key[proposes], reduce="amax")
    best = proposes & (key == top[slot])
    position = torch.arange(num_people, device=key.device).expand_as(key)
    first = torch.full_like(top, num_people, dtype=torch.long)
    first.scatter_reduce_(0, slot[best], position[best], reduce="amin")
    return best & (position == first[slot])
