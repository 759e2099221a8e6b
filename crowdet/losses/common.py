"""What the per-head losses share: the assignment of a batch, the positive count that normalises
every term, and the zero term that keeps every output in the graph.

A head's loss is a callable `(outputs, priors, batch, coder) -> {term: scalar}` (as DenseLoss);
crowdet.models.build.LOSSES picks it by the head's name.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from crowdet.structures import (
    Assigner,
    AssignResult,
    Batch,
    HeadOutput,
    Predictions,
    Priors,
    Targets,
)


def assign(
    assigner: Assigner,
    priors: Priors,
    batch: Batch,
    predictions: Callable[[], Predictions],
) -> AssignResult:
    """The assigner's result for the batch; `predictions()` (detached) is only made for an
    assigner that uses them."""
    with torch.no_grad():
        seen = predictions() if assigner.uses_predictions else None
        return assigner(priors, Targets(batch.boxes, batch.valid, batch.ignore), seen)


def positive_norm(pos: torch.Tensor, reducer: Callable | None) -> torch.Tensor:
    """max(1, number of positive priors), averaged over DDP ranks by `reducer` when given."""
    num_pos = pos.sum().float()
    if reducer is not None:
        num_pos = reducer(num_pos)
    return num_pos.clamp(min=1.0)


def in_graph(outputs: HeadOutput) -> torch.Tensor:
    """0 x the sum of every output: added to a term, every head parameter gets a (zero)
    gradient even in a batch without positives (DDP waits for every gradient)."""
    return 0.0 * sum(v.sum() for v in vars(outputs).values() if v is not None)
