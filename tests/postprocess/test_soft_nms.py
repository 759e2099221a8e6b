"""Tests of Soft-NMS: OpenCV as an oracle, a one-box-at-a-time reference, hand cases, properties."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import detections

from crowdet import boxes as box_ops
from crowdet.errors import ConfigError
from crowdet.postprocess import batched_soft_nms, soft_nms

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def crowd(seed, num=200, size=300.0, integer=False):
    """Detections clustered around a few people: boxes (N, 4) xyxy float32, scores (N,)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, size, (max(num // 8, 1), 2))
    xy = centres[rng.integers(len(centres), size=num)] + rng.normal(0, 6, (num, 2))
    wh = rng.uniform(10, 40, (num, 1)) * np.array([1.0, 2.0]) + rng.uniform(0, 5, (num, 2))
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1)
    if integer:
        boxes = np.round(boxes)
    return torch.tensor(boxes, dtype=torch.float32), torch.tensor(
        rng.random(num), dtype=torch.float32
    )


def reference_soft_nms(boxes, scores, method, sigma, iou_threshold, score_threshold, groups=None):
    """The textbook procedure, one pick at a time, in plain Python floats (on the IoU matrix of
    crowdet.boxes.iou)."""
    overlaps = box_ops.iou(boxes, boxes).tolist()
    scores = scores.tolist()
    groups = [0] * len(scores) if groups is None else groups.tolist()
    live = {i for i, s in enumerate(scores) if s >= score_threshold}
    keep, kept_scores = [], []
    while live:
        pick = min(live, key=lambda i: (-scores[i], i))
        live.remove(pick)
        keep.append(pick)
        kept_scores.append(scores[pick])
        for j in list(live):
            if groups[j] != groups[pick]:
                continue
            iou = overlaps[pick][j]
            if method == "gaussian":
                scores[j] *= math.exp(-(iou * iou) / sigma)
            elif iou > iou_threshold:
                scores[j] *= 1.0 - iou
            if scores[j] < score_threshold:
                live.remove(j)
    return keep, kept_scores


# ----------------------------------------------------------------------------- hand cases

PAIR = torch.tensor([[0.0, 0, 10, 20], [2.5, 0, 12.5, 20]])  # IoU = 150 / 250 = 0.6


def test_gaussian_and_linear_decay_formulas():
    keep, new = soft_nms(PAIR, torch.tensor([0.9, 0.8]), "gaussian", sigma=0.5)
    assert keep.tolist() == [0, 1]
    assert new.tolist() == pytest.approx([0.9, 0.8 * math.exp(-(0.6**2) / 0.5)], rel=1e-6)
    keep, new = soft_nms(PAIR, torch.tensor([0.9, 0.8]), "linear", iou_threshold=0.3)
    assert new.tolist() == pytest.approx([0.9, 0.8 * (1 - 0.6)], rel=1e-6)
    # Linear decay only above the threshold.
    keep, new = soft_nms(PAIR, torch.tensor([0.9, 0.8]), "linear", iou_threshold=0.7)
    assert new.tolist() == pytest.approx([0.9, 0.8])


def test_decayed_box_can_fall_behind_a_lower_scored_one():
    boxes = torch.cat([PAIR, torch.tensor([[100.0, 100, 110, 110]])])
    keep, new = soft_nms(boxes, torch.tensor([0.9, 0.8, 0.5]), "linear", iou_threshold=0.3)
    assert keep.tolist() == [0, 2, 1]
    assert new.tolist() == pytest.approx([0.9, 0.5, 0.8 * 0.4], rel=1e-6)


def test_boxes_below_the_score_threshold_are_dropped():
    keep, new = soft_nms(PAIR, torch.tensor([0.9, 0.5]), "linear", iou_threshold=0.3,
                         score_threshold=0.25)  # fmt: skip
    assert keep.tolist() == [0]  # 0.5 * 0.4 = 0.2 < 0.25
    keep, _ = soft_nms(PAIR, torch.tensor([0.9, 0.01]), score_threshold=0.05)
    assert keep.tolist() == [0]


def test_a_score_equal_to_the_threshold_is_kept():
    # OpenCV stops only below the threshold; build a decayed score that lands on it exactly.
    iou = box_ops.iou(PAIR[:1], PAIR[1:])[0, 0]
    decayed = float(torch.tensor(0.8) * (1.0 - iou))
    keep, new = soft_nms(PAIR, torch.tensor([0.9, 0.8]), "linear", 0.5, 0.3, decayed)
    assert keep.tolist() == [0, 1] and float(new[1]) == decayed
    keep, _ = soft_nms(PAIR, torch.tensor([0.9, 0.8]), "linear", 0.5, 0.3, decayed * 1.0001)
    assert keep.tolist() == [0]


def test_identical_boxes_decay_geometrically():
    boxes = torch.tensor([[0.0, 0, 10, 10]]).repeat(4, 1)
    keep, new = soft_nms(boxes, torch.full((4,), 0.8), "gaussian", sigma=0.5)
    iou = 100 / (100 + box_ops.EPS)
    factor = math.exp(-(iou**2) / 0.5)
    assert keep.tolist() == [0, 1, 2, 3]  # equal scores: lowest index first
    assert new.tolist() == pytest.approx([0.8 * factor**k for k in range(4)], rel=1e-5)


def test_edge_cases():
    keep, new = soft_nms(torch.zeros(0, 4), torch.zeros(0))
    assert keep.shape == (0,) and new.shape == (0,) and keep.dtype == torch.long
    keep, new = soft_nms(torch.tensor([[0.0, 0, 5, 5]]), torch.tensor([0.4]))
    assert keep.tolist() == [0] and new.tolist() == pytest.approx([0.4])
    flat = torch.tensor([[1.0, 1, 1, 9], [1, 1, 1, 9], [0, 0, 0, 0]])
    keep, new = soft_nms(flat, torch.tensor([0.3, 0.2, 0.1]))
    assert keep.tolist() == [0, 1, 2] and torch.isfinite(new).all()
    assert new.tolist() == pytest.approx([0.3, 0.2, 0.1])
    keep, new = soft_nms(PAIR.double(), torch.tensor([0.9, 0.8], dtype=torch.float64))
    assert new.dtype == torch.float64
    with pytest.raises(ConfigError, match="method"):
        soft_nms(PAIR, torch.ones(2), method="hard")
    with pytest.raises(ConfigError, match="sigma"):
        soft_nms(PAIR, torch.ones(2), sigma=0.0)


# ----------------------------------------------------------------------------- OpenCV oracle


def opencv_soft_nms(boxes, scores, method, sigma, iou_threshold, score_threshold):
    rects = [(int(x1), int(y1), int(x2 - x1), int(y2 - y1)) for x1, y1, x2, y2 in boxes.tolist()]
    kind = {
        "gaussian": cv2.dnn.SOFT_NMSMETHOD_SOFTNMS_GAUSSIAN,
        "linear": cv2.dnn.SOFT_NMSMETHOD_SOFTNMS_LINEAR,
    }[method]
    new, keep = cv2.dnn.softNMSBoxes(
        rects, scores.tolist(), score_threshold, iou_threshold, 0, sigma, kind
    )
    return [int(i) for i in np.asarray(keep).ravel()], np.asarray(new, dtype=np.float64).ravel()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("method", ["gaussian", "linear"])
def test_matches_opencv_on_integer_boxes(seed, method):
    # OpenCV's softNMSBoxes uses the same conventions: xywh integer rectangles whose area is
    # w * h (so xyxy with x2 = x + w and no +1), decay exp(-iou^2 / sigma) for the Gaussian
    # method (nms_threshold unused) and (1 - iou) only where iou > nms_threshold for the linear
    # one, picks while the best score is >= score_threshold, lowest index first on ties.
    # The differences: its IoU is computed in double and rounded to float, ours carries +1e-6 in
    # the denominator (scores agree to ~1e-6, not bit for bit); and it calls two zero-area
    # rectangles identical (IoU 1) where we say 0, so zero-area boxes are left out here. The
    # linear threshold 0.3183 is not a ratio of small integers, so no IoU sits on it exactly.
    boxes, scores = crowd(seed, integer=True)
    boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    args = dict(method=method, sigma=0.4, iou_threshold=0.3183, score_threshold=0.05)
    keep, new = soft_nms(boxes, scores, **args)
    expected_keep, expected_new = opencv_soft_nms(boxes, scores, **args)
    assert keep.tolist() == expected_keep
    np.testing.assert_allclose(new.numpy(), expected_new, rtol=1e-5)


# ----------------------------------------------------------------------------- slow reference


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("method", ["gaussian", "linear"])
def test_matches_one_by_one_reference(seed, method, device):
    boxes, scores = crowd(seed + 20)
    args = dict(method=method, sigma=0.5, iou_threshold=0.3, score_threshold=0.001)
    keep, new = soft_nms(boxes.to(device), scores.to(device), **args)
    expected_keep, expected_new = reference_soft_nms(boxes, scores, **args)
    assert keep.device.type == device
    assert keep.tolist() == expected_keep
    np.testing.assert_allclose(new.cpu().numpy(), expected_new, rtol=1e-5)


def test_batched_matches_reference_per_group():
    boxes, scores = crowd(30)
    # group ids need not be contiguous, and groups differ in size
    ids = torch.tensor([7, 100, 3, 3, 3])
    groups = ids[torch.tensor(np.random.default_rng(30).integers(0, 5, len(boxes)))]
    args = dict(method="gaussian", sigma=0.5, iou_threshold=0.3, score_threshold=0.01)
    keep, new = batched_soft_nms(boxes, scores, groups, **args)
    expected_keep, expected_new = reference_soft_nms(boxes, scores, **args, groups=groups)
    assert keep.tolist() == expected_keep
    np.testing.assert_allclose(new.numpy(), expected_new, rtol=1e-5)


def best_per_group(keep, new, groups, k):
    """The first k entries of each group in a (score-sorted) soft-NMS result, as (group, index,
    score) triples in order."""
    out, seen = [], {}
    for i, sc in zip(keep.tolist(), new.tolist()):
        g = int(groups[i])
        seen[g] = seen.get(g, 0) + 1
        if seen[g] <= k:
            out.append((g, i, sc))
    return out


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("k", [1, 5, 40])
def test_capped_picks_give_the_same_best_boxes(seed, k):
    boxes, scores = crowd(seed + 40, num=400)
    groups = torch.tensor(np.random.default_rng(seed).integers(0, 4, len(boxes)))
    args = dict(method="gaussian", sigma=0.5, score_threshold=0.001)
    full = batched_soft_nms(boxes, scores, groups, **args)
    capped = batched_soft_nms(boxes, scores, groups, **args, max_per_group=k)
    expected = best_per_group(*full, groups, k)
    got = best_per_group(*capped, groups, k)
    assert [(g, i) for g, i, _ in got] == [(g, i) for g, i, _ in expected]
    np.testing.assert_allclose([s for *_, s in got], [s for *_, s in expected], rtol=1e-6)
    assert len(capped[0]) < len(full[0])  # the cap did drop boxes early
    # without groups the cap applies to all boxes together
    one = soft_nms(boxes, scores)
    one_capped = batched_soft_nms(boxes, scores, None, max_per_group=k)
    assert one_capped[0][:k].tolist() == one[0][:k].tolist()


# ----------------------------------------------------------------------------- properties


@settings(max_examples=80, deadline=None)
@given(detections(), st.sampled_from(["gaussian", "linear"]), st.sampled_from([0.0, 0.05, 0.5]))
def test_scores_never_increase(dets, method, score_threshold):
    boxes, scores = dets
    keep, new = soft_nms(boxes, scores, method, score_threshold=score_threshold)
    assert len(set(keep.tolist())) == len(keep)
    assert (new <= scores[keep]).all()
    assert (new >= score_threshold).all()
    assert (new[1:] <= new[:-1]).all()  # picked in order of decayed score
    # A box that overlaps no other box keeps its score, and is kept when it is high enough.
    iou = box_ops.iou(boxes, boxes).fill_diagonal_(0)
    for j in range(len(boxes)):
        if bool((iou[j] == 0).all()) and scores[j] >= score_threshold:
            assert float(new[keep.tolist().index(j)]) == float(scores[j])


# ----------------------------------------------------------------------------- exact in float64
# In float64 the kernel and the reference compute each IoU by the same operations and decay by
# the same libm exp, so the picks and the decayed scores must agree bit for bit.


@settings(max_examples=150, deadline=None)
@given(
    detections(max_size=24),
    st.data(),
    st.sampled_from(["gaussian", "linear"]),
    st.sampled_from([0.0, 0.05, 0.5]),
    st.integers(0, 3),
)
def test_batched_equals_the_reference_bit_for_bit(dets, data, method, score_threshold, cap):
    boxes, scores = (t.double() for t in dets)
    if data.draw(st.booleans()):  # many equal scores: ties go to the lower index
        tied = st.sampled_from([0.25, 0.5, 1.0])
        scores = torch.tensor(data.draw(st.lists(tied, min_size=len(boxes), max_size=len(boxes))),
                              dtype=torch.float64).reshape(-1)  # fmt: skip
    labels = st.sampled_from([-5, 0, 3, 1000])  # any labels, in any order
    groups = torch.tensor(data.draw(st.lists(labels, min_size=len(boxes), max_size=len(boxes))))
    args = dict(method=method, sigma=0.5, iou_threshold=0.3, score_threshold=score_threshold)
    keep, new = batched_soft_nms(boxes, scores, groups, **args, max_per_group=cap)
    expected_keep, expected_new = reference_soft_nms(boxes, scores, **args, groups=groups)
    if cap:
        reference = torch.tensor(expected_keep), torch.tensor(expected_new, dtype=torch.float64)
        expected = best_per_group(*reference, groups, cap)
        expected_keep, expected_new = [i for _, i, _ in expected], [s for *_, s in expected]
    assert keep.tolist() == expected_keep
    assert new.tolist() == expected_new


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("method", ["gaussian", "linear"])
def test_crowd_in_groups_equals_the_reference_bit_for_bit(seed, method):
    boxes, scores = (t.double() for t in crowd(seed + 60, num=300))
    boxes = boxes + torch.rand(boxes.shape, generator=torch.Generator().manual_seed(seed))
    groups = torch.tensor(np.random.default_rng(seed).integers(-2, 2, len(boxes)))
    args = dict(method=method, sigma=0.3, iou_threshold=0.3, score_threshold=0.01)
    keep, new = batched_soft_nms(boxes, scores, groups, **args)
    expected_keep, expected_new = reference_soft_nms(boxes, scores, **args, groups=groups)
    assert keep.tolist() == expected_keep
    assert new.tolist() == expected_new


def test_signed_zero_scores_tie_and_go_by_index():
    boxes = torch.tensor([[0.0, 0, 1, 1], [5, 5, 6, 6], [10, 10, 11, 11]])
    keep, new = soft_nms(boxes, torch.tensor([-0.0, 0.0, -0.0]), score_threshold=-1.0)
    assert keep.tolist() == [0, 1, 2]


def test_group_labels_of_any_integer_or_float_kind():
    boxes, scores = crowd(70)
    groups = torch.tensor(np.random.default_rng(70).integers(0, 3, len(boxes)))
    expected = batched_soft_nms(boxes, scores, groups)
    for labels in (groups.int() - 1, groups.double() / 2 + 0.25, groups == 1):
        if labels.dtype == torch.bool:  # two groups: 1 and the rest
            expected = batched_soft_nms(boxes, scores, (groups == 1).long())
        keep, new = batched_soft_nms(boxes, scores, labels)
        assert keep.tolist() == expected[0].tolist()
        assert new.tolist() == expected[1].tolist()
