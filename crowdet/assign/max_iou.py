"""Max-IoU assignment of priors to people, batched over images and aware of crowds.

Rules, for each image of the batch (G padded targets, A priors):

1. People are the targets with ``valid & ~ignore`` and a positive area. A zero-area person
   overlaps nothing, so it is excluded: no prior is ever assigned to it. Ignore regions are the
   targets with ``valid & ignore``.
2. Thresholds. Each prior takes its best person by IoU (the lowest index among equal IoUs):
   IoU >= ``pos_iou`` makes it positive for that person, IoU < ``neg_iou`` makes it
   ``BACKGROUND``, anything in between makes it ``IGNORE``.
3. Ignore regions. A prior that is not positive and whose intersection over its own area with
   some ignore region is > ``ignore_ioa`` is ``IGNORE``: never a negative.
4. Low-quality matches (``low_quality=True``): every person is learnt from at least one prior,
   even in crowds where several people share the same best prior. The people still without a
   positive prior take part in rounds:

   - A prior is *locked* when it is the best positive prior (highest IoU, then lowest index) of a
     person that had positives after step 2, or when it was won in an earlier round. Every other
     prior is *free*: negatives, ``IGNORE`` priors, and the surplus positives of people who keep
     their locked prior.
   - Each unmatched person proposes its best free prior: the highest IoU; among priors it does
     not overlap at all, the one with the highest generalised IoU (the least distant one); the
     lowest prior index on ties.
   - A prior proposed by several people goes to the one that overlaps it most (the lowest person
     index on ties). It becomes positive for the winner and locked.
   - Rounds repeat until every person is matched or no proposal is left.

   Guarantee: each round matches at least one person in every image that still has an unmatched
   person and a free prior, and no round takes away a person's last positive. So after at most G
   rounds every person with a positive area has a positive prior whenever the image has at least
   as many priors as people (each matched person locks exactly one prior). With more people than
   priors, the people who lost every contest stay unmatched. Only unmatched people enter the
   rounds, and their match quality with the priors is computed once when it fits in
   ``max_elements`` (else again in each round), so the few rounds a crowd needs are cheap.

Memory: pairwise (image, target, prior) tensors are built in blocks of at most ``max_elements``
entries, first over images, then over priors, with only the targets concerned (people for IoU,
ignore regions for IoA, unmatched people in the rounds). The smallest block is one image by one
prior by those targets; peak memory is a few times ``4 * max_elements`` bytes. Everything stays
on the device of ``priors``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from crowdet.assign.codes import BACKGROUND, IGNORE
from crowdet.boxes import EPS, area
from crowdet.errors import ConfigError

__all__ = [
    "BACKGROUND",
    "IGNORE",
    "best_target",
    "check_shapes",
    "low_quality_rounds",
    "match_quality",
    "max_iou_assign",
]


def max_iou_assign(
    priors: torch.Tensor,
    gt_boxes: torch.Tensor,
    valid: torch.Tensor,
    ignore: torch.Tensor,
    pos_iou: float = 0.5,
    neg_iou: float = 0.4,
    ignore_ioa: float = 0.5,
    low_quality: bool = True,
    max_elements: int = 2**26,
    level_sizes: list[int] | None = None,
) -> torch.Tensor:
    """Assign each prior of each image to a person, ``BACKGROUND`` or ``IGNORE``.

    Args:
        priors: (A, 4) xyxy prior boxes, shared by every image.
        gt_boxes: (B, G, 4) xyxy targets, padded to the largest count in the batch.
        valid: (B, G) bool, True for a real target (a person or an ignore region).
        ignore: (B, G) bool, True where the target is an ignore region.
        pos_iou: a prior whose best IoU with a person is >= this is positive.
        neg_iou: a prior whose best IoU with every person is < this is a negative.
        ignore_ioa: a prior covered by an ignore region over more than this fraction of its own
            area is never a negative.
        low_quality: give every person at least one positive prior (see the module docstring).
        max_elements: budget of (image, target, prior) entries per pairwise block.
        level_sizes: priors per pyramid level. Not used: max-IoU compares every prior with every
            person whatever its level. Accepted so that every assigner has one signature.

    Returns:
        matched: (B, A) int64 on the device of ``priors``: the index g in [0, G) of the matched
        person for a positive prior, else ``BACKGROUND`` (-1) or ``IGNORE`` (-2).
    """
    _check_args(priors, gt_boxes, valid, ignore, pos_iou, neg_iou, max_elements)
    device = priors.device
    dtype = torch.promote_types(priors.dtype, torch.float32)
    priors = priors.to(dtype)
    gt_boxes = gt_boxes.to(device=device, dtype=dtype)
    valid = valid.to(device=device, dtype=torch.bool)
    ignore = ignore.to(device=device, dtype=torch.bool)
    num_images, num_gt = valid.shape
    num_priors = priors.shape[0]
    if num_images == 0 or num_gt == 0 or num_priors == 0:
        return torch.full((num_images, num_priors), BACKGROUND, dtype=torch.long, device=device)

    people = valid & ~ignore & (area(gt_boxes) > 0)
    regions = valid & ignore
    max_iou, best_gt, max_ioa = _prior_stats(priors, gt_boxes, people, regions, max_elements)
    matched = _threshold(max_iou, best_gt, max_ioa, pos_iou, neg_iou, ignore_ioa)
    if low_quality:
        low_quality_rounds(priors, gt_boxes, people, matched, max_iou, max_elements)
    return matched


def match_quality(gt_boxes: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """How well each prior suits each target, for choosing low-quality matches.

    gt_boxes (b, U, 4) and priors (a, 4), xyxy -> (b, U, a): the IoU where it is > 0; else
    GIoU - 1 = -1 - (enclosing area - union) / enclosing area, in (-2, -1], which ranks the priors
    that do not overlap a target by how far they are from it. Never NaN, even for zero-area boxes.
    """
    g = gt_boxes[:, :, None, :]
    p = priors[None, None, :, :]
    inter = _pair_intersection(g, p)
    union = area(gt_boxes)[:, :, None] + area(priors)[None, None, :] - inter
    quality = inter / (union + EPS)
    enclose_w = torch.maximum(g[..., 2], p[..., 2]) - torch.minimum(g[..., 0], p[..., 0])
    enclose_h = torch.maximum(g[..., 3], p[..., 3]) - torch.minimum(g[..., 1], p[..., 1])
    enclose = enclose_w.clamp_(min=0) * enclose_h.clamp_(min=0)
    apart = -1.0 - (enclose - union).clamp_(min=0) / (enclose + EPS)
    return torch.where(quality > 0, quality, apart)


def _check_args(priors, gt_boxes, valid, ignore, pos_iou, neg_iou, max_elements) -> None:
    check_shapes(priors, gt_boxes, valid, ignore, max_elements)
    if not 0 <= neg_iou <= pos_iou <= 1 or pos_iou <= 0:
        raise ConfigError(
            f"max-IoU assigner needs 0 <= neg_iou <= pos_iou <= 1 and pos_iou > 0, "
            f"got neg_iou={neg_iou}, pos_iou={pos_iou}"
        )


def check_shapes(priors, gt_boxes, valid, ignore, max_elements) -> None:
    """The argument checks every assigner shares: ValueError naming the bad one."""
    if priors.dim() != 2 or priors.shape[-1] != 4:
        raise ValueError(f"priors must have shape (A, 4), got {tuple(priors.shape)}")
    if valid.dim() != 2 or ignore.shape != valid.shape:
        raise ValueError(
            f"valid and ignore must both have shape (B, G), got {tuple(valid.shape)} "
            f"and {tuple(ignore.shape)}"
        )
    if gt_boxes.shape != (*valid.shape, 4):
        raise ValueError(
            f"gt_boxes must have shape (B, G, 4) = {(*valid.shape, 4)}, got {tuple(gt_boxes.shape)}"
        )
    if max_elements < 1:
        raise ValueError(f"max_elements must be >= 1, got {max_elements}")


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


def _pair_intersection(g: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Intersection areas of broadcast boxes g (b, G, 1, 4) and p (1, 1, a, 4) -> (b, G, a).

    Same arithmetic as ``crowdet.boxes.intersection``, with one (b, G, a) temporary per step.
    """
    w = torch.minimum(g[..., 2], p[..., 2]).sub_(torch.maximum(g[..., 0], p[..., 0]))
    h = torch.minimum(g[..., 3], p[..., 3]).sub_(torch.maximum(g[..., 1], p[..., 1]))
    return w.clamp_(min=0).mul_(h.clamp_(min=0))


def _prior_stats(
    priors: torch.Tensor,
    gt_boxes: torch.Tensor,
    people: torch.Tensor,
    regions: torch.Tensor,
    max_elements: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per prior and image: best IoU over people (-1 if none), its person, and best IoA over
    ignore regions (0 if none).

    priors (A, 4), gt_boxes (B, G, 4), people and regions (B, G) bool
    -> max_iou (B, A) float, best_gt (B, A) int64, max_ioa (B, A) float.
    """
    max_iou, best_gt = best_target(priors, gt_boxes, people, max_elements, over_prior=False)
    max_ioa, _ = best_target(priors, gt_boxes, regions, max_elements, over_prior=True)
    return max_iou, best_gt, max_ioa


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
    prior_area, box_area = area(priors), area(boxes)
    for bs, ps in _blocks(num_images, who.shape[1], num_priors, max_elements):
        inter = _pair_intersection(boxes[bs, :, None, :], priors[None, None, ps, :])
        if over_prior:
            ratio = inter.div_(prior_area[ps] + EPS)
        else:
            union = box_area[bs, :, None] + prior_area[None, None, ps] - inter
            ratio = inter.div_(union.add_(EPS))
        best, best_k = ratio.masked_fill_(outsider[bs], fill).max(dim=1)
        value[bs, ps] = best
        index[bs, ps] = who[bs].gather(1, best_k)
    return value, index


def _threshold(max_iou, best_gt, max_ioa, pos_iou, neg_iou, ignore_ioa) -> torch.Tensor:
    """Steps 2 and 3 of the rules: (B, A) inputs -> matched (B, A) int64."""
    background = torch.full_like(best_gt, BACKGROUND)
    matched = torch.where(max_iou < neg_iou, background, torch.full_like(best_gt, IGNORE))
    positive = max_iou >= pos_iou
    matched = torch.where(positive, best_gt, matched)
    covered = (max_ioa > ignore_ioa) & ~positive
    return matched.masked_fill_(covered, IGNORE)


def low_quality_rounds(priors, gt_boxes, people, matched, max_iou, max_elements) -> None:
    """Step 4 of the rules, in place on matched (B, A); see the module docstring.

    max_iou (B, A): for each positive prior, its IoU with its person (it picks the prior each
    matched person keeps). Shared with the ATSS assigner.
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
    cached = None
    if num_images * who.shape[1] * num_priors <= max_elements:  # reuse it in every round
        cached = match_quality(boxes, priors)
    for _ in range(num_gt):
        if not bool(pending.any()):
            break
        if cached is None:  # only the people still unmatched enter the round
            who = _compact(pending)
            boxes = gt_boxes.gather(1, who[..., None].expand(-1, -1, 4))
        key, prior = _best_free_prior(
            priors, boxes, pending.gather(1, who), ~locked, max_elements, cached
        )
        win = _contest_winners(key, prior, num_priors)
        if not bool(win.any()):
            break
        rows, cols = image.expand_as(prior)[win], prior[win]
        matched[rows, cols] = who[win]
        locked[rows, cols] = True
        pending[rows, who[win]] = False


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
