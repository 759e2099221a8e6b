"""Sparse (person, prior) candidate pairs for the assigners that prefilter by geometry (FCOS,
SimOTA, YOLOv3): the people of the whole batch as one list, the pairs a geometric test keeps
found block by block under a memory budget, and contests over a prior settled without a loop.

Pairs are kept as flat index tensors (person k in the batch's list of people, prior a), so no
(B, G, A) tensor is formed: the dense test runs on blocks of at most ``max_elements`` (person,
prior) entries and only the pairs it keeps are stored.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from crowdet import boxes as box_ops

__all__ = ["batch_people", "candidate_pairs", "settle_contests", "max_iou_of_predictions"]


def batch_people(people: torch.Tensor, gt_boxes: torch.Tensor):
    """people (B, G) bool, gt_boxes (B, G, 4) -> the people of the batch as one list: image (N,),
    person index g (N,) and boxes (N, 4)."""
    image, person = people.nonzero(as_tuple=True)
    return image, person, gt_boxes[image, person]


def candidate_pairs(
    num_people: int,
    num_priors: int,
    max_elements: int,
    keep: Callable[[slice], torch.Tensor],
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The (person, prior) pairs that `keep` accepts: keep(rows) -> (len(rows), A) bool for a
    slice of people, called on blocks of at most max(max_elements, A) entries.
    -> person (P,) and prior (P,) int64, in person-major order."""
    step = max(1, max_elements // max(num_priors, 1))
    people, priors = [], []
    for start in range(0, num_people, step):
        k, a = keep(slice(start, start + step)).nonzero(as_tuple=True)
        people.append(k + start)
        priors.append(a)
    if not people:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty.clone()
    return torch.cat(people), torch.cat(priors)


def settle_contests(slot: torch.Tensor, key: torch.Tensor, who: torch.Tensor, largest: bool):
    """Pairs competing for slots (e.g. image * A + prior) -> (P,) bool: the winner of each slot,
    the pair of the highest key (lowest when not `largest`), then of the lowest `who`.

    slot, who (P,) int64 >= 0; key (P,) float."""
    if len(slot) == 0:
        return torch.zeros(0, dtype=torch.bool, device=slot.device)
    size = int(slot.max()) + 1
    signed = key if largest else -key
    best = signed.new_full((size,), float("-inf"))
    best.scatter_reduce_(0, slot, signed, reduce="amax")
    top = signed == best[slot]
    none = torch.iinfo(torch.long).max
    first = torch.full((size,), none, dtype=torch.long, device=slot.device)
    first.scatter_reduce_(0, slot[top], who[top], reduce="amin")
    return top & (who == first[slot])


def max_iou_of_predictions(
    pred_boxes: torch.Tensor, gt_boxes: torch.Tensor, people: torch.Tensor, max_elements: int
) -> torch.Tensor:
    """pred_boxes (B, A, 4), gt_boxes (B, G, 4), people (B, G) bool -> (B, A): each predicted
    box's highest IoU with a person of its image (0 where the image has none), computed on
    (images, priors) blocks of at most max(max_elements, G) (image, target, prior) entries."""
    num_images, num_priors = pred_boxes.shape[:2]
    num_gt = gt_boxes.shape[1]
    out = pred_boxes.new_zeros(num_images, num_priors)
    if num_gt == 0 or num_priors == 0:
        return out
    per_image = num_gt * num_priors
    if per_image <= max_elements:
        step_images, step_priors = max_elements // per_image, num_priors
    else:
        step_images, step_priors = 1, max(1, max_elements // num_gt)
    outsider = ~people[:, :, None]
    for b0 in range(0, num_images, step_images):
        bs = slice(b0, b0 + step_images)
        for a0 in range(0, num_priors, step_priors):
            ps = slice(a0, a0 + step_priors)
            iou = box_ops.paired_iou(gt_boxes[bs, :, None, :], pred_boxes[bs, None, ps, :])
            out[bs, ps] = iou.masked_fill_(outsider[bs], 0.0).amax(dim=1)
    return out
