"""Tests of hard NMS and Adaptive NMS: torchvision as an oracle, slow references, properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import detections

from crowdet import boxes as box_ops
from crowdet.postprocess import adaptive_nms, batched_adaptive_nms, batched_nms, nms
from crowdet.postprocess.pairs import overlap_pairs

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def crowd(seed, num=200, size=300.0):
    """Detections clustered around a few people: boxes (N, 4) xyxy float32, scores (N,)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, size, (max(num // 8, 1), 2))
    xy = centres[rng.integers(len(centres), size=num)] + rng.normal(0, 6, (num, 2))
    wh = rng.uniform(10, 40, (num, 1)) * np.array([1.0, 2.0]) + rng.uniform(0, 5, (num, 2))
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1)
    return torch.tensor(boxes, dtype=torch.float32), torch.tensor(
        rng.random(num), dtype=torch.float32
    )


def py_iou(a, b):
    """IoU of two xyxy boxes given as lists, in plain Python (0 when the union is empty)."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def reference_nms(boxes, scores, thresholds, groups=None):
    """Greedy NMS, one box at a time: the kept box i suppresses later boxes of its group whose
    IoU with it is > thresholds[i]."""
    boxes, scores = boxes.tolist(), scores.tolist()
    groups = [0] * len(boxes) if groups is None else groups.tolist()
    order = sorted(range(len(boxes)), key=lambda i: (-scores[i], i))
    keep, removed = [], set()
    for pos, i in enumerate(order):
        if i in removed:
            continue
        keep.append(i)
        for j in order[pos + 1 :]:
            if groups[j] == groups[i] and py_iou(boxes[i], boxes[j]) > thresholds[i]:
                removed.add(j)
    return keep


# ----------------------------------------------------------------------------- hard NMS


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_matches_torchvision_and_reference(seed, threshold):
    boxes, scores = crowd(seed)
    keep = nms(boxes, scores, threshold)
    assert torch.equal(keep, torchvision.ops.nms(boxes, scores, threshold))
    assert keep.tolist() == reference_nms(boxes, scores, [threshold] * len(boxes))


@pytest.mark.parametrize("seed", range(3))
def test_batched_nms_matches_reference_per_group(seed):
    boxes, scores = crowd(seed)
    groups = torch.tensor(np.random.default_rng(seed).integers(0, 3, len(boxes)))
    keep = batched_nms(boxes, scores, groups, 0.5)
    assert keep.tolist() == reference_nms(boxes, scores, [0.5] * len(boxes), groups)


def test_nms_edge_cases():
    empty = nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert empty.shape == (0,) and empty.dtype == torch.long
    assert nms(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([0.3]), 0.5).tolist() == [0]
    same = torch.tensor([[0.0, 0, 10, 10]]).repeat(5, 1)
    assert nms(same, torch.tensor([0.1, 0.5, 0.5, 0.2, 0.4]), 0.5).tolist() == [1]
    flat = torch.tensor([[0.0, 0, 0, 10], [0, 0, 0, 10], [5, 5, 5, 5]])
    assert sorted(nms(flat, torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist()) == [0, 1, 2]
    with pytest.raises(ValueError, match="scores"):
        nms(same, torch.zeros(4), 0.5)


@settings(max_examples=80, deadline=None)
@given(detections(), st.sampled_from([0.0, 0.3, 0.5, 0.9]))
def test_hard_nms_keeps_no_pair_above_threshold_and_suppresses_only_for_a_reason(dets, thr):
    boxes, scores = dets
    keep = nms(boxes, scores, thr).tolist()
    for a in keep:
        for b in keep:
            assert a == b or py_iou(boxes[a].tolist(), boxes[b].tolist()) <= thr + 1e-6
    for j in set(range(len(boxes))) - set(keep):  # each removed box overlaps a kept one
        assert any(
            py_iou(boxes[i].tolist(), boxes[j].tolist()) > thr - 1e-6 and scores[i] >= scores[j]
            for i in keep
        )


# ----------------------------------------------------------------------------- adaptive NMS

PAIR = torch.tensor([[0.0, 0, 10, 20], [2.5, 0, 12.5, 20]])  # IoU = 150 / 250 = 0.6


def test_adaptive_nms_keeps_overlapping_people_in_dense_crowds():
    scores = torch.tensor([0.9, 0.8])
    # Density 0.7 of the kept box: threshold max(0.5, 0.7) = 0.7 > 0.6, both survive.
    assert adaptive_nms(PAIR, scores, torch.tensor([0.7, 0.7]), 0.5).tolist() == [0, 1]
    # Density 0.3: threshold max(0.5, 0.3) = 0.5 < 0.6, the second box is suppressed.
    assert adaptive_nms(PAIR, scores, torch.tensor([0.3, 0.3]), 0.5).tolist() == [0]
    # Only the density of the kept (higher-scored) box counts.
    assert adaptive_nms(PAIR, scores, torch.tensor([0.3, 0.9]), 0.5).tolist() == [0]
    assert adaptive_nms(PAIR, scores.flip(0), torch.tensor([0.3, 0.9]), 0.5).tolist() == [1, 0]
    # Strict comparison: a threshold equal to the IoU keeps both.
    assert adaptive_nms(PAIR, scores, torch.tensor([0.0, 0.0]), 0.6).tolist() == [0, 1]


def test_adaptive_nms_chain_is_resolved_greedily():
    # Box 1 would suppress box 2, but box 0 suppresses box 1 first, so box 2 survives.
    boxes = torch.tensor([[0.0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]])
    keep = adaptive_nms(boxes, torch.tensor([0.9, 0.8, 0.7]), torch.zeros(3), 0.3)
    assert keep.tolist() == [0, 2]


def test_adaptive_nms_edge_cases():
    empty = adaptive_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0))
    assert empty.shape == (0,) and empty.dtype == torch.long
    one = adaptive_nms(torch.tensor([[0.0, 0, 5, 5]]), torch.tensor([0.2]), torch.tensor([0.9]))
    assert one.tolist() == [0]
    same = torch.tensor([[0.0, 0, 10, 10]]).repeat(4, 1)
    keep = adaptive_nms(same, torch.tensor([0.5, 0.7, 0.7, 0.1]), torch.full((4,), 0.8))
    assert keep.tolist() == [1]
    flat = torch.tensor([[1.0, 1, 1, 9]]).repeat(3, 1)
    assert adaptive_nms(flat, torch.tensor([0.3, 0.2, 0.1]), torch.zeros(3)).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="densities"):
        adaptive_nms(same, torch.ones(4), torch.ones(3))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", range(4))
def test_adaptive_nms_matches_reference(seed, device):
    boxes, scores = crowd(seed)
    densities = torch.tensor(np.random.default_rng(seed + 10).uniform(0, 0.9, len(boxes)))
    thresholds = densities.clamp(min=0.5).tolist()
    keep = adaptive_nms(boxes.to(device), scores.to(device), densities.to(device), 0.5)
    assert keep.device.type == device
    assert keep.tolist() == reference_nms(boxes, scores, thresholds)


@pytest.mark.parametrize("seed", range(3))
def test_adaptive_nms_without_density_is_hard_nms(seed):
    boxes, scores = crowd(seed, num=400)
    keep = adaptive_nms(boxes, scores, torch.zeros(len(boxes)), 0.45)
    assert torch.equal(keep, torchvision.ops.nms(boxes, scores, 0.45))


def test_batched_adaptive_nms_matches_reference_per_group():
    boxes, scores = crowd(5)
    rng = np.random.default_rng(5)
    groups = torch.tensor(rng.integers(0, 4, len(boxes)))
    densities = torch.tensor(rng.uniform(0, 0.9, len(boxes)), dtype=torch.float32)
    keep = batched_adaptive_nms(boxes, scores, densities, groups, 0.4, max_elements=50)
    expected = reference_nms(boxes, scores, densities.clamp(min=0.4).tolist(), groups)
    assert keep.tolist() == expected


# ----------------------------------------------------------------------------- overlapping pairs


@pytest.mark.parametrize("max_elements", [1, 37, 2**20])
def test_overlap_pairs_lists_every_overlapping_pair_once(max_elements):
    boxes, _ = crowd(3, num=120)
    boxes[::17, 2] = boxes[::17, 0]  # some zero-width boxes
    boxes[7] = float("nan")  # a broken box pairs with nothing and hides no pair
    groups = torch.tensor(np.random.default_rng(3).integers(0, 3, len(boxes))) * 7 + 2
    for min_iou, grp in [(0.0, None), (0.4, None), (0.2, groups), (0.0, groups)]:
        first, second, iou = overlap_pairs(boxes, min_iou, grp, max_elements)
        found = {(a, b): v for a, b, v in zip(first.tolist(), second.tolist(), iou.tolist())}
        assert len(found) == len(first)
        full = box_ops.iou(boxes, boxes).tolist()
        expected = {}
        for a in range(len(boxes)):
            for b in range(a + 1, len(boxes)):
                value = py_iou(boxes[a].tolist(), boxes[b].tolist())
                if value > min_iou and (grp is None or grp[a] == grp[b]):
                    expected[(a, b)] = full[a][b]
        assert found.keys() == expected.keys()
        assert found == expected  # the very values of crowdet.boxes.iou


@pytest.mark.parametrize("min_iou", [0.5, 0.85, 0.95])
def test_overlap_pairs_high_thresholds_miss_no_near_duplicate(min_iou):
    # near-duplicates on an integer grid: many pairs with IoU just above / at / below min_iou,
    # the ones the narrowed sweep (x1_b < x1_a + (1 - min_iou) w_a) must still find
    rng = np.random.default_rng(int(min_iou * 100))
    base = rng.integers(0, 200, (30, 2)).repeat(8, 0)
    size = rng.integers(4, 60, (30, 2)).repeat(8, 0)
    # plus the tightest case: b inside a, right-aligned, its width just above / below
    # min_iou * w_a, so x1_b sits at the very end of the sweep's reach x1_a + (1 - min_iou) w_a
    cuts = torch.tensor([-0.5, -0.1, -0.01, 0.0, 0.01, 0.1])
    for offset in (0.0, 1000.0):
        x1 = offset + (1 - min_iou) * 100 + cuts
        tight = torch.stack(
            [x1, torch.zeros(6), torch.full((6,), offset + 100), torch.full((6,), 50.0)], 1
        )
        a = torch.tensor([[offset, 0.0, offset + 100, 50]])
        pairs = overlap_pairs(torch.cat([a, tight]), min_iou)[:2]
        ious = box_ops.iou(a, tight)[0]
        want = {(0, j + 1) for j in range(6) if ious[j] > min_iou}
        assert set(zip(*(t.tolist() for t in pairs))) >= want and len(want) >= 2
    jitter = 3 if min_iou < 0.9 else 1
    x1y1 = base + rng.integers(-jitter, jitter + 1, base.shape)
    wh = size + rng.integers(-jitter, jitter + 1, size.shape)
    boxes = torch.tensor(np.concatenate([x1y1, x1y1 + wh], 1), dtype=torch.float32)
    groups = torch.tensor(rng.integers(0, 2, len(boxes)))
    first, second, iou = overlap_pairs(boxes, min_iou, groups, max_elements=97)
    found = set(zip(first.tolist(), second.tolist()))
    full = box_ops.iou(boxes, boxes)
    same = groups[:, None] == groups[None, :]
    upper = torch.ones_like(same).triu(1)
    expected = torch.nonzero((full > min_iou) & same & upper).tolist()
    assert found == {tuple(p) for p in expected}
    assert len(expected) > 20  # the case has near-duplicates to find
