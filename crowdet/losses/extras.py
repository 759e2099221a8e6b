"""The loss terms of a dense head's crowd extras, on the priors the assignment made positive.

- "visible": the visible box of a positive prior's person, from the head's second_box in the
  head's box encoding, with the run's box loss; people without a usable visible box
  (Batch.visible_valid) give no term.
- "density": the prior's predicted density against its person's (crowdet.losses.density).

Each term is a sum normalised by the same count of positives as the main terms.
"""

from __future__ import annotations

import torch

from crowdet.losses.box import box_loss
from crowdet.losses.density import density_loss, person_density
from crowdet.structures import Batch, HeadOutput


def extra_terms(
    outputs: HeadOutput,
    prior_boxes: torch.Tensor,
    batch: Batch,
    coder,
    b_idx: torch.Tensor,
    a_idx: torch.Tensor,
    g_idx: torch.Tensor,
    norm: torch.Tensor,
    box: str = "giou",
    beta: float = 0.1,
    box_weight: float = 1.0,
) -> dict[str, torch.Tensor]:
    """The extra terms of `outputs`' extras. Positives: image b_idx (P,), prior a_idx (P,) with
    its prior box prior_boxes (P, 4), person g_idx (P,); norm the positives' count (>= 1)."""
    terms = {}
    if outputs.second_box is not None:
        terms["visible"] = (
            box_weight
            * _visible_term(
                outputs.second_box, prior_boxes, batch, coder, b_idx, a_idx, g_idx, box, beta
            )
            / norm
        )
    if outputs.density is not None:
        people = batch.valid & ~batch.ignore
        target = person_density(batch.boxes, people)[b_idx, g_idx]
        loss = density_loss(outputs.density[b_idx, a_idx, 0], target)
        terms["density"] = loss / norm + 0.0 * outputs.density.sum()
    return terms


def _visible_term(second_box, prior_boxes, batch, coder, b_idx, a_idx, g_idx, box, beta):
    zero = 0.0 * second_box.sum()  # every parameter in the graph, whatever the batch holds
    if batch.visible is None:
        raise ValueError(
            "the head predicts visible boxes but the batch carries none (crowdet.data.collate)"
        )
    usable = batch.visible_valid[b_idx, g_idx]
    b, a, g = b_idx[usable], a_idx[usable], g_idx[usable]
    target = batch.visible[b, g]
    return box_loss(box, coder, prior_boxes[usable], second_box[b, a], target, beta) + zero
