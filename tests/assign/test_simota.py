"""SimOTA: hand-made cases with known answers, and the batched assigner against a slow per-image,
per-person reference of the module's rules on random crowds (hypothesis)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from crowdet import boxes as box_ops
from crowdet.assign.codes import BACKGROUND, IGNORE
from crowdet.assign.simota import SimOTAAssigner
from crowdet.models.anchors import point_priors
from crowdet.structures import Predictions, Priors, Targets

BG, IG = BACKGROUND, IGNORE


def simota(low_quality=False, max_elements=2**20, **kw):
    args = dict(center_radius=1.5, candidate_topk=10, iou_weight=3.0, ignore_ioa=0.5)
    return SimOTAAssigner(**{**args, **kw}, low_quality=low_quality, max_elements=max_elements)


def targets(boxes, ignore=None):
    boxes = torch.tensor([boxes], dtype=torch.float32)
    ignore = torch.tensor([ignore or [False] * boxes.shape[1]])
    return Targets(boxes, torch.ones(boxes.shape[:2], dtype=torch.bool), ignore)


def row_priors(n: int, stride: float = 8.0) -> Priors:
    """n point priors in a row: squares of side `stride` at x = stride * i, y = 0."""
    boxes = torch.tensor([[stride * i, 0.0, stride * (i + 1), stride] for i in range(n)])
    return Priors(boxes, [n], torch.full((n,), stride))


def test_dynamic_k_takes_the_lowest_costs_and_the_k_from_the_summed_ious():
    # One person around priors 0..3; predictions: prior 1 exact (IoU 1), prior 2 IoU 0.8 (a box
    # shrunk), prior 0 and 3 far off (IoU 0). sum of IoUs 1.8 -> k = 1: prior 1 only.
    priors = row_priors(6)
    person = [4.0, 0, 28, 8]  # centre x 16: priors 0..3 (centres 4..28) lie within 12 px
    pred = priors.boxes.clone()[None]
    pred[0, 1] = torch.tensor(person)
    pred[0, 2] = torch.tensor([4.0, 0, 23.2, 8])  # IoU 19.2 / 24 = 0.8
    scores = torch.full((1, 6, 1), 0.5)
    result = simota()(priors, targets([person]), Predictions(scores, pred))
    assert result.matched.tolist() == [[BG, 0, BG, BG, BG, BG]]
    assert result.soft_targets[0, 1].item() == pytest.approx(1.0)
    # both exact: sum 2.0 -> k = 2; with prior 2's score lower, its cost is higher but it is
    # still among the 2 cheapest
    pred[0, 2] = torch.tensor(person)
    scores[0, 2] = 0.2
    result = simota()(priors, targets([person]), Predictions(scores, pred))
    assert result.matched.tolist() == [[BG, 0, 0, BG, BG, BG]]


def test_cost_is_bce_plus_three_times_minus_log_iou():
    # k = 1 and two candidates: prior 0 with IoU 0.5 and score 0.9, prior 1 with IoU 0.6 and
    # score 0.3: costs -log 0.9 - 3 log 0.5 = 2.18 and -log 0.3 - 3 log 0.6 = 2.74: prior 0.
    priors = row_priors(2)
    person = [0.0, 0, 16, 8]
    pred = torch.tensor([[[0.0, 0, 8, 8], [0.0, 0, 9.6, 8]]])  # IoU 0.5 and 0.6
    scores = torch.tensor([[[0.9], [0.3]]])
    assert -math.log(0.9) - 3 * math.log(0.5) < -math.log(0.3) - 3 * math.log(0.6)
    result = simota()(priors, targets([person]), Predictions(scores, pred))
    assert result.matched.tolist() == [[0, BG]]
    # with the IoU cost weighted 10, prior 1 wins (IoU matters more than the score)
    result = simota(iou_weight=10.0)(priors, targets([person]), Predictions(scores, pred))
    assert result.matched.tolist() == [[BG, 0]]


def test_a_prior_two_people_take_goes_to_the_lower_cost():
    priors = row_priors(3)
    a, b = [0.0, 0, 16, 8], [4.0, 0, 20, 8]  # both have priors 0..2 as candidates
    pred = torch.tensor([[[4.0, 0, 20, 8], [0.0, 0, 16, 8], [30.0, 0, 40, 8]]])
    scores = torch.full((1, 3, 1), 0.5)
    # person a: best prior 1 (exact); person b: best prior 0 (exact); k = 1 each (IoUs sum to
    # 1 + 0.6 = 1.6): no conflict
    result = simota()(priors, targets([a, b]), Predictions(scores, pred))
    assert result.matched.tolist() == [[1, 0, BG]]
    # the same prediction for both: prior 1 is a's exact box (cost lower for a), b loses it
    pred = torch.tensor([[[30.0, 0, 40, 8], [0.0, 0, 16, 8], [30.0, 0, 40, 8]]])
    result = simota()(priors, targets([a, b]), Predictions(scores, pred))
    assert result.matched.tolist() == [[BG, 0, BG]]
    # ... and with low_quality, b takes another prior rather than none
    result = simota(low_quality=True)(priors, targets([a, b]), Predictions(scores, pred))
    assert result.matched[0, 1] == 0 and (result.matched[0] == 1).sum() == 1


def test_ignore_regions_are_not_negatives_and_outside_centre_is_never_positive():
    priors = row_priors(6)
    person, region = [0.0, 0, 8, 8], [32.0, 0, 48, 8]  # region covers priors 4 and 5
    pred = priors.boxes[None].clone()
    scores = torch.full((1, 6, 1), 0.5)
    result = simota()(priors, targets([person, region], [False, True]), Predictions(scores, pred))
    # the person's centre (4, 4): priors 0 and 1 within 12 px; prior 0 exact, IoU sum 1 -> k 1
    assert result.matched.tolist() == [[0, BG, BG, BG, IG, IG]]


def test_empty_targets_and_zero_area_people():
    priors = row_priors(3)
    pred = Predictions(torch.full((1, 3, 1), 0.5), priors.boxes[None].clone())
    assert simota()(priors, targets([[5.0, 5, 5, 9]]), pred).matched.tolist() == [[BG] * 3]
    empty = Targets(
        torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=bool), torch.zeros(2, 0, dtype=bool)
    )
    result = simota()(priors, empty)
    assert result.matched.tolist() == [[BG] * 3] * 2


# ----------------------------------------------------------------------------- the reference


def reference(priors: Priors, t: Targets, p: Predictions, a: SimOTAAssigner) -> torch.Tensor:
    """The module's rules 1-6, image by image and person by person (low_quality off)."""
    boxes, strides = priors.boxes, priors.strides
    points = (boxes[:, :2] + boxes[:, 2:]) / 2
    out = torch.full((len(t.boxes), len(boxes)), BG, dtype=torch.long)
    for b in range(len(t.boxes)):
        chosen: dict[int, list[tuple[float, int]]] = {}  # prior -> [(cost, person)]
        for g in range(t.boxes.shape[1]):
            box = t.boxes[b, g]
            if not t.valid[b, g] or t.ignore[b, g] or box_ops.area(box) <= 0:
                continue
            centre = (box[:2] + box[2:]) / 2
            cands = []
            for i in range(len(boxes)):
                if float((points[i] - centre).abs().max()) < a.center_radius * float(strides[i]):
                    iou = box_ops.paired_iou(box, p.boxes[b, i])
                    s = p.scores[b, i, 0].clamp(0, 1)
                    cost = F.binary_cross_entropy(s, torch.ones_like(s)) - a.iou_weight * torch.log(
                        iou + 1e-8
                    )
                    cands.append((i, iou, cost))
            best = sorted(cands, key=lambda c: (-float(c[1]), c[0]))[: a.candidate_topk]
            total = torch.zeros(())
            for _, iou, _ in sorted(best, key=lambda c: c[0]):  # summed in prior order
                total = total + iou
            k = max(1, int(total))
            for i, _, cost in sorted(cands, key=lambda c: (float(c[2]), c[0]))[:k]:
                chosen.setdefault(i, []).append((float(cost), g))
        for i, takers in chosen.items():
            out[b, i] = min(takers)[1]
        for i in range(len(boxes)):
            if out[b, i] >= 0:
                continue
            for g in range(t.boxes.shape[1]):
                if t.valid[b, g] and t.ignore[b, g]:
                    if float(box_ops.paired_ioa(boxes[i], t.boxes[b, g])) > a.ignore_ioa:
                        out[b, i] = IG
    return out


coord = st.floats(0, 40, allow_nan=False, width=32)  # dense: shared candidates


@st.composite
def crowds(draw):
    num_images, num_gt = draw(st.integers(1, 3)), draw(st.integers(0, 6))
    priors = point_priors([8, 16])([(8, 8), (4, 4)])
    boxes = torch.zeros(num_images, num_gt, 4)
    valid = torch.zeros(num_images, num_gt, dtype=torch.bool)
    ignore = torch.zeros_like(valid)
    for b in range(num_images):
        for g in range(num_gt):
            x, y = draw(coord), draw(coord)
            w, h = draw(st.floats(1, 40, width=32)), draw(st.floats(1, 60, width=32))
            boxes[b, g] = torch.tensor([x, y, x + w, y + h])
            valid[b, g] = draw(st.booleans()) or g == 0
            ignore[b, g] = draw(st.integers(0, 4)) == 0
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    n = len(priors.boxes)
    jitter = torch.randn(num_images, n, 4, generator=gen) * 6
    pred = priors.boxes[None] + jitter
    if num_gt:  # some predictions near a person: higher IoUs, larger k, contested priors
        near = torch.randint(0, num_gt, (num_images, n), generator=gen)
        close = torch.rand(num_images, n, generator=gen) < 0.5
        person = boxes.gather(1, near[..., None].expand(-1, -1, 4)) + jitter / 3
        pred = torch.where(close[..., None], person, pred)
    pred = torch.cat([pred[..., :2], torch.maximum(pred[..., 2:], pred[..., :2] + 1)], dim=-1)
    scores = torch.rand(num_images, n, 1, generator=gen)
    return priors, Targets(boxes, valid, ignore), Predictions(scores, pred)


@settings(max_examples=18, deadline=None)
@given(crowds(), st.sampled_from([1, 7, 2**20]))
def test_batched_simota_equals_the_per_image_reference(case, max_elements):
    priors, t, p = case
    assigner = simota(max_elements=max_elements)
    got = assigner(priors, t, p)
    assert torch.equal(got.matched, reference(priors, t, p, assigner))
    pos = got.matched >= 0
    b, a = pos.nonzero(as_tuple=True)
    want = box_ops.paired_iou(t.boxes[b, got.matched[b, a]], p.boxes[b, a])
    torch.testing.assert_close(got.soft_targets[b, a], want)
    assert (got.soft_targets[~pos] == 0).all()


@settings(max_examples=20, deadline=None)
@given(crowds())
def test_with_low_quality_every_person_has_a_positive(case):
    priors, t, p = case
    matched = simota(low_quality=True)(priors, t, p).matched
    people = t.valid & ~t.ignore & (box_ops.area(t.boxes) > 0)
    for b, g in people.nonzero().tolist():
        assert (matched[b] == g).any(), (b, g)
    without = simota()(priors, t, p).matched
    assert (matched >= 0).sum() >= (without >= 0).sum()  # the rounds add, never remove
