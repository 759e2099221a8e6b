import math

import torch

from crowdet.config import MaxIoUAssignConfig, load_config
from crowdet.losses.dense import DenseLoss
from crowdet.models.build import build_assigner, build_detector
from crowdet.models.coders import DeltaCoder
from crowdet.structures import Batch, HeadOutput, Priors

CODER = DeltaCoder()


def make_batch(boxes: list[list[list[float]]], ignore=None, size=64) -> Batch:
    b = len(boxes)
    g = max((len(x) for x in boxes), default=0)
    t = torch.zeros(b, g, 4)
    valid = torch.zeros(b, g, dtype=torch.bool)
    for i, bx in enumerate(boxes):
        if bx:
            t[i, : len(bx)] = torch.tensor(bx)
            valid[i, : len(bx)] = True
    ign = torch.zeros(b, g, dtype=torch.bool) if ignore is None else torch.tensor(ignore)
    return Batch(
        images=torch.randn(b, 3, size, size),
        image_sizes=torch.tensor([[size, size]] * b),
        boxes=t,
        valid=valid,
        ignore=ign,
        scales=torch.ones(b),
        orig_sizes=torch.tensor([[size, size]] * b),
        image_ids=[str(i) for i in range(b)],
    )


def one_level(boxes: torch.Tensor) -> Priors:
    return Priors(boxes, [len(boxes)], torch.full((len(boxes),), 8.0))


def test_focal_value_hand_computed():
    """One positive prior (on the GT) and one negative, logits 0 -> p = 0.5 for both."""
    loss = DenseLoss(
        build_assigner(MaxIoUAssignConfig()), focal_alpha=0.25, focal_gamma=2.0, box="giou"
    )
    priors = torch.tensor([[0.0, 0.0, 10.0, 20.0], [40.0, 40.0, 50.0, 60.0]])
    batch = make_batch([[[0.0, 0.0, 10.0, 20.0]]])
    out = loss(
        HeadOutput(torch.zeros(1, 2, 1), torch.zeros(1, 2, 4)), one_level(priors), batch, CODER
    )
    pos = 0.25 * 0.5**2 * math.log(2)
    neg = 0.75 * 0.5**2 * math.log(2)
    assert math.isclose(out["cls"].item(), (pos + neg) / 1, rel_tol=1e-5)
    assert out["box"].item() < 1e-6  # the prior is the box and the deltas are 0


def test_box_loss_normalised_by_positives():
    loss = DenseLoss(
        build_assigner(MaxIoUAssignConfig()), box="smooth_l1", box_weight=1.0, smooth_l1_beta=0.0
    )
    priors = torch.tensor([[0.0, 0.0, 10.0, 20.0], [30.0, 0.0, 40.0, 20.0]])
    batch = make_batch([[[0.0, 0.0, 10.0, 20.0], [30.0, 0.0, 40.0, 20.0]]])
    deltas = torch.zeros(1, 2, 4)
    deltas[0, 0, 0] = 0.2  # L1 error 0.2 on one prior, 0 on the other: mean over 2 positives
    out = loss(HeadOutput(torch.zeros(1, 2, 1), deltas), one_level(priors), batch, CODER)
    assert math.isclose(out["box"].item(), 0.2 / 2, rel_tol=1e-5)


def test_no_people_gives_finite_losses_and_gradients_everywhere():
    cfg = load_config("configs/tiny.yaml")
    model = build_detector(cfg)
    batch = make_batch([[], []])
    losses = model.loss(batch)
    total = sum(losses.values())
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["box"].item() == 0.0
    total.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []


def test_ignore_only_image_has_no_negatives_under_the_region():
    """A region covering every prior: no positives, no negatives -> classification loss 0."""
    loss = DenseLoss(build_assigner(MaxIoUAssignConfig()))
    priors = torch.tensor([[0.0, 0.0, 10.0, 20.0], [12.0, 0.0, 22.0, 20.0]])
    batch = make_batch([[[0.0, 0.0, 64.0, 64.0]]], ignore=[[True]])
    outputs = HeadOutput(torch.full((1, 2, 1), 3.0), torch.zeros(1, 2, 4))
    out = loss(outputs, one_level(priors), batch, CODER)
    assert out["cls"].item() == 0.0 and out["box"].item() == 0.0
