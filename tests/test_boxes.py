"""Tests of crowdet.boxes against formulas, torchvision.ops and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st

from crowdet import boxes as B

PROPERTY = settings(max_examples=100, deadline=None)


def t(rows):
    return torch.tensor(rows, dtype=torch.float32)


def random_boxes(rng, num, positive=True):
    xy = rng.uniform(-50, 300, (num, 2))
    wh = rng.uniform(1 if positive else 0, 120, (num, 2))
    return torch.tensor(np.concatenate([xy, xy + wh], 1), dtype=torch.float32)


# ----------------------------------------------------------------------------- hand cases


def test_area_and_intersection_formulas():
    assert B.area(t([[0, 0, 10, 20], [5, 5, 5, 9], [3, 3, 1, 1]])).tolist() == [200, 0, 0]
    inter = B.intersection(t([[0, 0, 10, 10]]), t([[5, 5, 15, 15], [10, 0, 20, 10], [2, 3, 4, 7]]))
    assert inter.tolist() == [[5 * 5, 0, 2 * 4]]


def test_iou_hand_made_matrix():
    a = t([[0, 0, 10, 10], [0, 0, 20, 10]])
    b = t([[5, 5, 15, 15], [0, 0, 10, 10], [30, 30, 40, 40]])
    expected = [
        [25 / (100 + 100 - 25), 1.0, 0.0],
        [50 / (200 + 100 - 50), 100 / 200, 0.0],
    ]
    torch.testing.assert_close(B.iou(a, b), t(expected), rtol=0, atol=1e-6)


def test_integer_boxes_give_float_ratios():
    a, b = torch.tensor([[0, 0, 10, 10]]), torch.tensor([[5, 5, 15, 15], [0, 0, 10, 20]])
    assert B.iou(a, b)[0].tolist() == pytest.approx([25 / 175, 100 / 200])
    assert B.ioa(a, b)[0].tolist() == pytest.approx([25 / 100, 1.0])
    assert B.giou(a, b)[0].tolist() == pytest.approx([25 / 175 - 50 / 225, 100 / 200])
    assert B.iou(a, b).dtype == torch.float32
    assert B.intersection(a, b).tolist() == [[25, 100]]


def test_ioa_hand_cases():
    # Intersection over the area of the first argument: a detection inside an ignore region.
    det = t([[0, 0, 10, 10], [5, 0, 25, 10], [0, 0, 0, 0]])
    region = t([[0, 0, 15, 100]])
    assert B.ioa(det, region).flatten().tolist() == pytest.approx([1.0, 100 / 200, 0.0])
    assert B.ioa(region, det).flatten().tolist() == pytest.approx([100 / 1500, 100 / 1500, 0.0])


def test_zero_area_boxes_give_zero_not_nan():
    flat = t([[5, 5, 5, 15], [0, 0, 0, 0], [3, 3, 3, 3]])
    out = B.iou(flat, torch.cat([flat, t([[0, 0, 10, 10]])]))
    assert torch.equal(out, torch.zeros(3, 4))
    assert torch.equal(B.ioa(flat, flat), torch.zeros(3, 3))


def test_giou_hand_made_matrix():
    a = t([[0, 0, 10, 10]])
    b = t([[5, 5, 15, 15], [20, 0, 30, 10], [0, 0, 10, 10], [0, 0, 0, 0]])
    # IoU - (enclosing - union) / enclosing
    expected = [[25 / 175 - (225 - 175) / 225, 0 - (300 - 200) / 300, 1.0, 0 - 0 / 100]]
    torch.testing.assert_close(B.giou(a, b), t(expected), rtol=0, atol=1e-6)
    assert torch.isfinite(B.giou(t([[3, 3, 3, 3]]), t([[3, 3, 3, 3]]))).all()


def test_paired_kernels_equal_the_pairwise_diagonal_bit_for_bit():
    rng = np.random.default_rng(4)
    a, b = random_boxes(rng, 50, positive=False), random_boxes(rng, 50, positive=False)
    b[:10] = a[:10]  # some identical pairs
    for paired, pairwise in [
        (B.paired_intersection, B.intersection),
        (B.paired_iou, B.iou),
        (B.paired_ioa, B.ioa),
        (B.paired_giou, B.giou),
    ]:
        assert torch.equal(paired(a, b), torch.diagonal(pairwise(a, b)))
    # broadcast: one box against many, and (N, 1) against (1, M)
    assert torch.equal(B.paired_iou(a[:1], b), B.iou(a[:1], b)[0])
    assert torch.equal(B.paired_iou(a[:, None], b[None]), B.iou(a, b))


def test_kernels_leave_their_inputs_alone_and_give_gradients():
    rng = np.random.default_rng(5)
    a = random_boxes(rng, 6).double().requires_grad_()
    b = random_boxes(rng, 6).double()
    b[:3] = a.detach()[:3] + 1.5  # overlapping pairs
    before = a.detach().clone(), b.clone()
    for kernel in (B.paired_iou, B.paired_ioa, B.paired_giou):
        assert torch.autograd.gradcheck(lambda x, k=kernel: k(x, b), (a,))
        kernel(a, b).sum().backward()
    assert torch.equal(a.detach(), before[0]) and torch.equal(b, before[1])


def test_batched_leading_dimensions():
    rng = np.random.default_rng(0)
    a, b = random_boxes(rng, 6).reshape(2, 3, 4), random_boxes(rng, 8).reshape(2, 4, 4)
    out = B.iou(a, b)
    assert out.shape == (2, 3, 4)
    for k in range(2):
        assert torch.equal(out[k], B.iou(a[k], b[k]))


def test_conversions_hand_cases():
    xyxy = t([[10, 20, 40, 80]])
    assert B.xyxy_to_xywh(xyxy).tolist() == [[10, 20, 30, 60]]
    assert B.xyxy_to_cxcywh(xyxy).tolist() == [[25, 50, 30, 60]]
    assert B.xywh_to_xyxy(t([[10, 20, 30, 60]])).tolist() == [[10, 20, 40, 80]]


def test_clip_hand_case():
    out = B.clip(t([[-5, -5, 50, 30], [10, 120, 20, 130]]), height=100, width=40)
    assert out.tolist() == [[0, 0, 40, 30], [10, 100, 20, 100]]


def test_encode_decode_formulas():
    prior, box = t([[0, 0, 10, 10]]), t([[5, 5, 25, 15]])
    # Centres (5, 5) -> (15, 10), sizes (10, 10) -> (20, 10).
    expected = [(15 - 5) / 10, (10 - 5) / 10, math.log(20 / 10), math.log(10 / 10)]
    assert B.encode(prior, box).flatten().tolist() == pytest.approx(expected)
    weights = (10.0, 10.0, 5.0, 5.0)
    scaled = [e * w for e, w in zip(expected, weights)]
    assert B.encode(prior, box, weights).flatten().tolist() == pytest.approx(scaled)
    torch.testing.assert_close(B.decode(prior, t([scaled]), weights), box)


def test_decode_clamps_the_log_scale():
    out = B.decode(t([[0, 0, 16, 16]]), t([[0, 0, 100, 100]]))
    # Width and height limited to 16 * exp(log(1000 / 16)) = 1000, around the centre (8, 8).
    torch.testing.assert_close(out, t([[8 - 500, 8 - 500, 8 + 500, 8 + 500]]))
    assert torch.isfinite(B.decode(t([[0, 0, 16, 16]]), t([[0, 0, 1e6, -1e6]]))).all()


# ----------------------------------------------------------------------------- torchvision


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    "ours, theirs",
    [(B.iou, torchvision.ops.box_iou), (B.giou, torchvision.ops.generalized_box_iou)],
)
def test_iou_and_giou_match_torchvision_on_positive_area_boxes(seed, ours, theirs):
    rng = np.random.default_rng(seed)
    a, b = random_boxes(rng, 40), random_boxes(rng, 50)
    torch.testing.assert_close(ours(a, b), theirs(a, b), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_conversions_match_torchvision(seed):
    boxes = random_boxes(np.random.default_rng(seed), 30, positive=False)
    convert = torchvision.ops.box_convert
    torch.testing.assert_close(B.xyxy_to_xywh(boxes), convert(boxes, "xyxy", "xywh"))
    torch.testing.assert_close(B.xyxy_to_cxcywh(boxes), convert(boxes, "xyxy", "cxcywh"))
    xywh = convert(boxes, "xyxy", "xywh")
    torch.testing.assert_close(B.xywh_to_xyxy(xywh), convert(xywh, "xywh", "xyxy"))


# ----------------------------------------------------------------------------- properties

coord = st.floats(-100, 500, width=32)
size = st.floats(0, 200, width=32)


@st.composite
def box_tensors(draw, min_size=1, max_size=6, min_side=0.0):
    count = draw(st.integers(min_size, max_size))
    rows = []
    for _ in range(count):
        x, y = draw(coord), draw(coord)
        w = draw(st.floats(min_side, 200, width=32))
        h = draw(st.floats(min_side, 200, width=32))
        rows.append([x, y, x + w, y + h])
    return t(rows)


@PROPERTY
@given(box_tensors(), box_tensors())
def test_iou_is_symmetric_and_in_unit_interval(a, b):
    forward, backward = B.iou(a, b), B.iou(b, a)
    assert torch.equal(forward, backward.T)
    assert not torch.isnan(forward).any()
    assert ((forward >= 0) & (forward <= 1)).all()
    assert ((B.ioa(a, b) >= 0) & (B.ioa(a, b) <= 1)).all()
    # A box with itself: IoU 1 up to the epsilon, or 0 when it has no area.
    self_iou = torch.diagonal(B.iou(a, a))
    areas = B.area(a)
    assert torch.allclose(self_iou, areas / (areas + B.EPS), rtol=1e-5)


@PROPERTY
@given(box_tensors(min_side=1.0), st.data())
def test_decode_inverts_encode(boxes, data):
    # Priors of sizes within the decoder's log-scale clamp of the boxes (ratio < 1000 / 16).
    scale = data.draw(st.floats(1 / 50, 50))
    shift = data.draw(st.floats(-100, 100))
    cxcywh = B.xyxy_to_cxcywh(boxes)
    wh = cxcywh[:, 2:] * scale
    priors = torch.cat([cxcywh[:, :2] + shift - wh / 2, cxcywh[:, :2] + shift + wh / 2], 1)
    weights = data.draw(st.sampled_from([(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]))
    back = B.decode(priors, B.encode(priors, boxes, weights), weights)
    torch.testing.assert_close(back, boxes, rtol=1e-4, atol=2e-3)


@PROPERTY
@given(box_tensors(), box_tensors())
def test_giou_is_symmetric_and_between_minus_one_and_the_iou(a, b):
    forward = B.giou(a, b)
    assert torch.equal(forward, B.giou(b, a).T)
    assert not torch.isnan(forward).any()
    assert ((forward >= -1) & (forward <= B.iou(a, b) + 1e-6)).all()
