"""The EMD loss against a brute-force minimum over the pairings, and its targets on hand cases."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from crowdet.assign.max_iou import MaxIoUAssigner
from crowdet.losses.emd import EMDLoss, emd_costs, emd_min
from crowdet.models.coders import DeltaCoder
from crowdet.structures import Batch, HeadOutput, Priors, Targets


def brute_force(logits, regression, anchors, gt, labels, coder, weight):
    """Per prior, per permutation, in Python: the smallest total cost."""
    total = 0.0
    for n in range(len(labels)):
        k = labels.shape[1]
        costs = []
        for perm in itertools.permutations(range(k)):
            cost = 0.0
            for i, j in enumerate(perm):
                y = torch.tensor(float(labels[n, j]))
                cost += float(sigmoid_focal_loss(logits[n, i], y, 0.25, 2.0, reduction="sum"))
                if labels[n, j] == 1:
                    pred = coder.decode(anchors[n], regression[n, i])
                    cost += weight * float(generalized_box_iou_loss(pred, gt[n, j], eps=1e-7))
            costs.append(cost)
        total += min(costs)
    return total


@pytest.mark.parametrize("k", [2, 3])
def test_emd_is_the_brute_force_minimum_over_pairings(k):
    torch.manual_seed(k)
    n = 6
    anchors = torch.tensor([[10.0, 10, 30, 60]]).repeat(n, 1) + torch.arange(n)[:, None] * 3.0
    gt = anchors[:, None, :] + torch.randn(n, k, 4) * 4
    labels = torch.randint(0, 2, (n, k))
    labels[0] = 1  # a prior with every target a person
    labels[1] = 0  # one with none
    logits, regression = torch.randn(n, k), torch.randn(n, k, 4) * 0.2
    coder = DeltaCoder()
    cls, box = emd_costs(logits, regression, anchors, gt, labels, coder, 0.25, 2.0, "giou")
    c, b = emd_min(cls, 2.0 * box)
    want = brute_force(logits, regression, anchors, gt, labels, coder, 2.0)
    assert float(c.sum() + b.sum()) == pytest.approx(want, rel=1e-5)


def test_the_cheaper_pairing_is_chosen():
    # prediction 0 sits on person 1 and prediction 1 on person 0: the crossed pairing wins
    anchors = torch.tensor([[0.0, 0, 10, 20]])
    gt = torch.tensor([[[20.0, 0, 30, 20], [0, 0, 10, 20]]])
    coder = DeltaCoder()
    regression = torch.stack([coder.encode(anchors, gt[:, 1]), coder.encode(anchors, gt[:, 0])], 1)
    logits = torch.tensor([[4.0, 4.0]])
    cls, box = emd_costs(logits, regression, anchors, gt, torch.tensor([[1, 1]]), coder,
                         0.25, 2.0, "giou")  # fmt: skip
    _, b = emd_min(cls, box)
    assert float(b[0]) == pytest.approx(0.0, abs=1e-5)
    assert float(box[0, 0, 0]) > 1.0  # the straight pairing would cost a lot


def test_targets_are_the_assigned_person_then_the_next_nearest():
    anchors = torch.tensor([[0.0, 0, 10, 20], [100, 100, 110, 120], [40, 0, 50, 20]])
    people = torch.tensor([[[0.0, 0, 10, 20], [1, 0, 11, 20], [60, 60, 70, 80]]])
    valid = torch.ones(1, 3, dtype=torch.bool)
    loss = EMDLoss(MaxIoUAssigner(0.5, 0.4, 0.5, False, 2**20), instances=2, pos_iou=0.5)
    targets, labels = loss.targets(Priors(anchors, [3]), Targets(people, valid, ~valid & False))
    # prior 0: assigned person 0 (IoU 1), then person 1 (IoU 9/11 >= 0.5)
    assert targets[0, 0].tolist() == [0, 1] and labels[0, 0].tolist() == [1, 1]
    # priors 1 and 2: background, both targets
    assert labels[0, 1].tolist() == [0, 0] and labels[0, 2].tolist() == [0, 0]


def test_loss_of_a_batch_without_people_is_finite_with_gradients():
    coder = DeltaCoder()
    anchors = torch.tensor([[0.0, 0, 10, 20], [40, 0, 50, 20]]).repeat_interleave(2, 0)
    logits = torch.zeros(1, 4, 1, requires_grad=True)
    regression = torch.zeros(1, 4, 4, requires_grad=True)
    batch = Batch(
        images=torch.zeros(1, 3, 32, 64), image_sizes=torch.tensor([[32, 64]]),
        boxes=torch.zeros(1, 0, 4), valid=torch.zeros(1, 0, dtype=torch.bool),
        ignore=torch.zeros(1, 0, dtype=torch.bool), scales=torch.ones(1),
        orig_sizes=torch.tensor([[32, 64]]),
    )  # fmt: skip
    loss = EMDLoss(MaxIoUAssigner(0.5, 0.4, 0.5, True, 2**20), instances=2)
    out = loss(HeadOutput(logits, regression), Priors(anchors, [4]), batch, coder)
    total = out["cls"] + out["box"]
    total.backward()
    # four background predictions at p = 0.5: focal 0.75 * 0.25 * log 2 each
    assert float(out["cls"].detach()) == pytest.approx(4 * 0.75 * 0.25 * math.log(2), rel=1e-5)
    assert logits.grad is not None and regression.grad is not None
