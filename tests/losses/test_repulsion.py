"""Repulsion loss: hand-made boxes with values written as formulas."""

from __future__ import annotations

import math

import pytest
import torch

from crowdet.config import load_config
from crowdet.errors import ConfigError
from crowdet.losses.repulsion import RepulsionLoss, rep_box, rep_gt, smooth_ln
from crowdet.models.build import build_loss
from crowdet.structures import Batch

TINY = "configs/tiny.yaml"


def test_smooth_ln_hand_made():
    x = torch.tensor([0.0, 0.25, 0.5, 0.75])
    expected = [0.0, -math.log(0.75), -math.log(0.5), 0.25 / 0.5 - math.log(0.5)]
    assert torch.allclose(smooth_ln(x, 0.5), torch.tensor(expected))
    # sigma 0: linear from the start, x / 1 - ln 1
    assert torch.allclose(smooth_ln(x, 0.0), x)


def scene():
    """Image 0: people A, B and an ignore region R; image 1: one person."""
    boxes = torch.tensor(
        [
            [[0.0, 0, 10, 10], [5, 0, 15, 10], [0, 0, 11, 10]],
            [[0, 0, 10, 10], [0, 0, 0, 0], [0, 0, 0, 0]],
        ]
    )
    valid = torch.tensor([[True, True, True], [True, False, False]])
    ignore = torch.tensor([[False, False, True], [False, False, False]])
    return boxes, valid, ignore


def test_rep_gt_pushes_from_the_other_person_overlapping_the_prior_most():
    boxes, valid, ignore = scene()
    people = valid & ~ignore
    priors = torch.tensor([[1.0, 0, 11, 10], [40, 40, 50, 50], [0, 0, 10, 10]])
    pred = torch.tensor([[2.0, 0, 12, 10], [6, 0, 16, 10], [3, 0, 13, 10]])
    image, person = torch.tensor([0, 0, 1]), torch.tensor([0, 1, 0])
    # prior 0 (of A) overlaps B (and the ignore region more, which does not count): IoG of its
    # box with B = 7 * 10 / 100; prior 1 overlaps nobody else; image 1 has no other person
    total = rep_gt(pred, priors, image, person, boxes, people, sigma=0.5)
    assert total.item() == pytest.approx(0.2 / 0.5 - math.log(0.5), rel=1e-6)
    total = rep_gt(pred, priors, image, person, boxes, people, sigma=0.5, max_elements=1)
    assert total.item() == pytest.approx(0.2 / 0.5 - math.log(0.5), rel=1e-6)


def test_rep_box_pushes_apart_boxes_of_different_people_of_one_image():
    pred = torch.tensor([[0.0, 0, 10, 10], [5, 0, 15, 10], [0, 0, 10, 10], [0, 0, 10, 10]])
    image, person = torch.tensor([0, 0, 0, 1]), torch.tensor([0, 1, 0, 1])
    # pairs (0, 1) and (2, 1): IoU 50 / 150 each; (0, 2) share a person; 3 is another image
    value = rep_box(pred, image, person, sigma=0.5)
    assert value.item() == pytest.approx(-math.log(1 - 1 / 3), rel=1e-6)
    assert rep_box(pred, image, person, 0.5, max_elements=1).item() == pytest.approx(value.item())
    pred.requires_grad_()
    rep_box(pred, image, person, 0.5).backward()
    assert pred.grad[1, 0] < 0  # moving box 1 right (away from box 0) lowers the loss


def test_weights_from_the_config_and_off_by_default():
    assert build_loss(load_config(TINY, [])).repulsion is None
    loss = build_loss(load_config(TINY, ["loss.rep_gt=0.5", "loss.rep_box=0.25"])).repulsion
    assert isinstance(loss, RepulsionLoss) and (loss.gt_weight, loss.box_weight) == (0.5, 0.25)
    boxes, valid, ignore = scene()
    batch = Batch(
        torch.zeros(2, 3, 8, 8),
        torch.zeros(2, 2),
        boxes,
        valid,
        ignore,
        torch.ones(2),
        torch.zeros(2, 2),
    )
    pred = torch.tensor([[2.0, 0, 12, 10], [6, 0, 16, 10]])
    priors = torch.tensor([[1.0, 0, 11, 10], [5, 0, 15, 10]])
    out = loss(pred, priors, torch.tensor([0, 0]), torch.tensor([0, 1]), batch, torch.tensor(2.0))
    # rep_gt: box 0 against B (IoG 0.7); box 1 against A (its prior overlaps A): IoG 4 * 10 / 100
    expected_gt = 0.5 * (0.2 / 0.5 - math.log(0.5) - math.log(1 - 0.4)) / 2
    iou = 60 / 140  # boxes 0 and 1
    assert out["rep_gt"].item() == pytest.approx(expected_gt, rel=1e-6)
    assert out["rep_box"].item() == pytest.approx(0.25 * -math.log(1 - iou), rel=1e-6)
    with pytest.raises(ConfigError, match="rep_gt / loss.rep_box need a hard assignment"):
        build_loss(load_config(TINY, ["assign.name=freeanchor", "loss.rep_gt=1"]))
