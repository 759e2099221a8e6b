"""Tests of box voting: hand cases, a one-kept-box-at-a-time reference, properties, the pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import detections

from crowdet import boxes as box_ops
from crowdet.models.coders import DeltaCoder
from crowdet.postprocess import batched_nms
from crowdet.postprocess.decode import PassOutput, postprocess
from crowdet.postprocess.vote import box_voting
from crowdet.structures import HeadOutput


def reference_voting(boxes, scores, kept, groups, iou_threshold):
    """For each kept box: the score-weighted mean over itself and the same-group boxes with
    IoU > threshold, in float64 with an explicit loop."""
    b, s = boxes.double(), scores.double()
    iou = box_ops.iou(b, b)
    out = []
    for k in kept.tolist():
        voters = {k} | {
            j for j in range(len(b)) if groups[j] == groups[k] and iou[k, j] > iou_threshold
        }
        idx = torch.tensor(sorted(voters))
        w = s[idx]
        out.append((b[idx] * w[:, None]).sum(0) / w.sum() if w.sum() > 0 else b[k])
    return torch.stack(out) if out else b.new_zeros(0, 4)


def test_two_boxes_by_hand():
    # IoU of [0,0,10,10] and [0,0,10,12] is 100/120 = 0.833
    boxes = torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 10, 12]])
    scores = torch.tensor([0.9, 0.3])
    voted = box_voting(boxes, scores, torch.tensor([0]), iou_threshold=0.8)
    assert torch.allclose(voted, torch.tensor([[0.0, 0, 10, (0.9 * 10 + 0.3 * 12) / 1.2]]))
    # below the threshold (strict): no vote
    same = box_voting(boxes, scores, torch.tensor([0]), iou_threshold=0.85)
    assert torch.equal(same, boxes[:1])


def test_other_groups_and_kept_neighbours():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 10, 12], [0.0, 0, 10, 11]])
    scores = torch.tensor([0.8, 0.4, 0.5])
    groups = torch.tensor([0, 1, 0])
    # box 1 is in another image; box 2 (IoU 0.91 with box 0) is kept too and votes for box 0
    voted = box_voting(boxes, scores, torch.tensor([0, 2]), groups, iou_threshold=0.8)
    y0 = (0.8 * 10 + 0.5 * 11) / 1.3
    assert torch.allclose(voted, torch.tensor([[0.0, 0, 10, y0], [0.0, 0, 10, y0]]))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("threshold", [0.5, 0.75, 0.9])
def test_matches_reference_on_crowds(seed, threshold):
    rng = np.random.default_rng(seed)
    n = 300
    centres = rng.uniform(0, 200, (30, 2))
    xy = centres[rng.integers(30, size=n)] + rng.normal(0, 3, (n, 2))
    wh = rng.uniform(10, 30, (n, 1)) * np.array([1.0, 2.2]) + rng.uniform(0, 4, (n, 2))
    boxes = torch.tensor(np.concatenate([xy - wh / 2, xy + wh / 2], 1), dtype=torch.float32)
    scores = torch.tensor(rng.random(n), dtype=torch.float32)
    groups = torch.tensor(rng.integers(0, 3, n))
    kept = batched_nms(boxes, scores, groups, 0.5)
    voted = box_voting(boxes, scores, kept, groups, threshold, max_elements=64)
    ref = reference_voting(boxes, scores, kept, groups, threshold)
    assert torch.allclose(voted.double(), ref, atol=1e-4)
    assert not torch.equal(voted, boxes[kept])  # the case exercises voting


@settings(max_examples=150, deadline=None)
@given(detections(max_size=10), st.floats(0.0, 0.95), st.data())
def test_properties(dets, threshold, data):
    boxes, scores = dets
    picks = st.lists(st.integers(0, max(len(boxes) - 1, 0)), unique=True, max_size=len(boxes))
    kept = torch.tensor(data.draw(picks) if len(boxes) else [], dtype=torch.long)
    voted = box_voting(boxes, scores, kept, iou_threshold=threshold)
    ref = reference_voting(boxes, scores, kept, torch.zeros(len(boxes)), threshold)
    assert torch.allclose(voted.double(), ref, atol=1e-4)
    if len(kept):  # a mean of boxes stays inside their envelope
        assert (voted[:, :2] >= boxes[:, :2].min(0).values - 1e-4).all()
        assert (voted[:, 2:] <= boxes[:, 2:].max(0).values + 1e-4).all()


def test_bad_threshold():
    with pytest.raises(ValueError, match="iou_threshold"):
        box_voting(torch.zeros(1, 4), torch.ones(1), torch.tensor([0]), iou_threshold=1.0)


def test_pipeline_votes_only_when_asked():
    # two priors on one person, the weaker slightly lower: voting moves the kept box towards it
    priors = torch.tensor([[10.0, 10, 30, 60], [10.0, 12, 30, 62]])
    logits = torch.tensor([[[2.0], [1.0]]])
    deltas = torch.zeros(1, 2, 4)
    passes = [PassOutput(HeadOutput(logits, deltas), priors, torch.tensor([[100, 100]]))]
    args = (passes, torch.tensor([1.0]), DeltaCoder())
    plain = postprocess(*args, nms="hard", iou_threshold=0.5)[0]
    voted = postprocess(*args, nms="hard", iou_threshold=0.5, vote_iou=0.8)[0]
    s0, s1 = torch.sigmoid(torch.tensor(2.0)), torch.sigmoid(torch.tensor(1.0))
    assert torch.equal(plain.boxes, priors[:1])
    expected_y1 = (s0 * 10 + s1 * 12) / (s0 + s1)
    assert torch.allclose(voted.boxes[0, 1], expected_y1)
    assert torch.equal(voted.scores, plain.scores)
