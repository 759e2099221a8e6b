"""The crowd suppressions against hard NMS (torchvision.ops.nms as the oracle) where they must
equal it, and hand cases where they must not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from hypothesis import given, settings
from strategies import detections

from crowdet.postprocess.nms import batched_adaptive_nms
from crowdet.postprocess.suppress import Candidates, batched_set_nms, suppress


def crowd(seed, num=300):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 300, (num // 8, 2))
    xy = centres[rng.integers(len(centres), size=num)] + rng.normal(0, 6, (num, 2))
    wh = rng.uniform(10, 40, (num, 1)) * np.array([1.0, 2.0]) + rng.uniform(0, 5, (num, 2))
    boxes = torch.tensor(np.concatenate([xy - wh / 2, xy + wh / 2], 1), dtype=torch.float32)
    return boxes, torch.tensor(rng.random(num), dtype=torch.float32)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("nt", [0.3, 0.5, 0.7])
def test_adaptive_nms_with_low_densities_is_hard_nms(seed, nt):
    boxes, scores = crowd(seed)
    densities = torch.rand(len(boxes), generator=torch.Generator().manual_seed(seed)) * nt
    groups = torch.zeros(len(boxes), dtype=torch.long)
    kept = batched_adaptive_nms(boxes, scores, densities, groups, nt)
    assert kept.tolist() == torchvision.ops.nms(boxes, scores, nt).tolist()


def test_adaptive_nms_keeps_a_neighbour_the_density_allows():
    boxes = torch.tensor([[0.0, 0, 10, 20], [2.5, 0, 12.5, 20]])  # IoU 0.6
    scores = torch.tensor([0.9, 0.8])
    assert batched_adaptive_nms(boxes, scores, torch.tensor([0.5, 0.5]), None, 0.5).tolist() == [0]
    assert batched_adaptive_nms(boxes, scores, torch.tensor([0.65, 0.0]), None, 0.5).tolist() == [
        0,
        1,
    ]


@pytest.mark.parametrize("seed", range(3))
def test_visible_nms_with_visible_equal_to_full_is_hard_nms(seed):
    boxes, scores = crowd(seed + 10)
    image = torch.tensor(np.random.default_rng(seed).integers(0, 3, len(boxes)))
    c = Candidates(scores, boxes, torch.zeros_like(image), image, visible=boxes.clone())
    kept, final = suppress(c, image, "visible", 0.5)
    assert kept.tolist() == torchvision.ops.batched_nms(boxes, scores, image, 0.5).tolist()
    assert torch.equal(final, scores)


def test_visible_nms_keeps_people_whose_visible_parts_are_apart():
    full = torch.tensor([[0.0, 0, 10, 40], [2, 0, 12, 40]])  # IoU 0.67
    visible = torch.tensor([[0.0, 0, 10, 10], [2, 30, 12, 40]])  # apart
    c = Candidates(torch.tensor([0.9, 0.8]), full, torch.zeros(2).long(), torch.zeros(2).long(),
                   visible=visible)  # fmt: skip
    assert suppress(c, torch.zeros(2).long(), "visible", 0.5)[0].tolist() == [0, 1]
    assert suppress(c, torch.zeros(2).long(), "hard", 0.5)[0].tolist() == [0]


@pytest.mark.parametrize("seed", range(3))
def test_set_nms_with_one_instance_per_prior_is_hard_nms(seed):
    boxes, scores = crowd(seed + 20)
    groups = torch.tensor(np.random.default_rng(seed).integers(0, 2, len(boxes)))
    sets = torch.arange(len(boxes))
    kept = batched_set_nms(boxes, scores, sets, groups, 0.5)
    assert kept.tolist() == torchvision.ops.batched_nms(boxes, scores, groups, 0.5).tolist()


def test_set_nms_keeps_the_predictions_of_one_prior():
    boxes = torch.tensor([[0.0, 0, 10, 20], [1, 0, 11, 20], [2, 0, 12, 20]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    # 0 and 1 come from one prior: neither suppresses the other; 2 (another prior) goes
    assert batched_set_nms(boxes, scores, torch.tensor([5, 5, 6]), None, 0.5).tolist() == [0, 1]
    # 2 is suppressed by 0 even though 1 (which 0 did not suppress) shares nothing with it
    assert batched_set_nms(boxes, scores, torch.tensor([5, 6, 5]), None, 0.5).tolist() == [0, 2]


def slow_set_nms(boxes, scores, sets, threshold):
    """Greedy, one box at a time."""
    from crowdet import boxes as B

    iou = B.iou(boxes, boxes)
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    kept = []
    for i in order:
        if all(sets[k] == sets[i] or float(iou[k, i]) <= threshold for k in kept):
            kept.append(i)
    return kept


@settings(max_examples=60, deadline=None)
@given(detections())
def test_set_nms_matches_the_one_by_one_reference(dets):
    boxes, scores = dets
    sets = torch.arange(len(boxes)) // 2
    kept = batched_set_nms(boxes, scores, sets, None, 0.5)
    assert kept.tolist() == slow_set_nms(boxes, scores, sets.tolist(), 0.5)


def test_linear_soft_nms_is_reached_from_suppress():
    boxes = torch.tensor([[0.0, 0, 10, 20], [2.5, 0, 12.5, 20]])  # IoU 0.6
    c = Candidates(torch.tensor([0.9, 0.8]), boxes, torch.zeros(2).long(), torch.zeros(2).long())
    kept, final = suppress(c, torch.zeros(2).long(), "soft", 0.3, soft_method="linear")
    assert kept.tolist() == [0, 1]
    assert final.tolist() == pytest.approx([0.9, 0.8 * 0.4], rel=1e-5)
    kept, final = suppress(c, torch.zeros(2).long(), "soft", 0.3, soft_method="gaussian")
    assert final.tolist() == pytest.approx([0.9, 0.8 * np.exp(-0.36 / 0.5)], rel=1e-5)
