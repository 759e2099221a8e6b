"""FCOS assignment: hand-made cases with known answers, and against torchvision's FCOS matching
(its compute_loss, the matched indices captured) on random crowds (hypothesis)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torchvision.models.detection import FCOS

from crowdet import boxes as box_ops
from crowdet.assign.codes import BACKGROUND, IGNORE
from crowdet.assign.fcos import FCOSAssigner
from crowdet.models.anchors import point_priors
from crowdet.structures import Priors, Targets

BG, IG = BACKGROUND, IGNORE


def fcos(radius=1.5, bounds=None, low_quality=False, max_elements=2**20):
    return FCOSAssigner(radius, bounds, 0.5, low_quality, max_elements)


def targets(boxes, ignore=None):
    boxes = torch.tensor([boxes], dtype=torch.float32)
    ignore = torch.tensor([ignore or [False] * boxes.shape[1]])
    return Targets(boxes, torch.ones(boxes.shape[:2], dtype=torch.bool), ignore)


def two_levels() -> Priors:
    """P3 on a 4 x 4 grid (points at 4, 12, 20, 28), P4 on 2 x 2 (points at 8, 24)."""
    return point_priors([8, 16])([(4, 4), (2, 2)])


def test_inside_the_centre_region_and_the_scale_range():
    priors = two_levels()
    # a 20 x 20 person centred on (16, 16): P3 points within 12 px of the centre and inside the
    # box are (12|20, 12|20); their largest side distance is 14 or 18 < 64 (P3's range); P4's
    # lower bound is 64, so no P4 point
    got = fcos()(priors, targets([[6.0, 6, 26, 26]])).matched[0]
    p3 = got[:16].view(4, 4)
    want = torch.full((4, 4), BG)
    want[1:3, 1:3] = 0
    assert torch.equal(p3, want) and (got[16:] == BG).all()
    # radius 0.5: only points within 4 px of (16, 16): none on P3 (at 4 px exactly: strict)
    assert (fcos(radius=0.5)(priors, targets([[6.0, 6, 26, 26]])).matched == BG).all()
    # bounds [10]: reach 14 or 18 is above P3's upper bound 10 and inside P4's (10, inf): the
    # P4 points within 24 px of the centre and inside the box: (8|24, 8|24)
    got = fcos(bounds=[10.0])(priors, targets([[6.0, 6, 26, 26]])).matched[0]
    assert (got[:16] == BG).all() and got[16:].tolist() == [0, 0, 0, 0]


def test_a_point_in_two_people_goes_to_the_smaller_and_ignore_regions():
    priors = two_levels()
    big, small, region = [0.0, 0, 32, 32], [9.0, 9, 23, 23], [24.0, 24, 40, 40]
    got = fcos(radius=0)(priors, targets([big, small, region], [False, False, True])).matched[0]
    p3 = got[:16].view(4, 4)
    assert p3[1:3, 1:3].eq(1).all()  # inside both: the smaller
    assert p3[0].eq(0).all() and p3[:, 0].eq(0).all()  # inside the big one only
    # point (28, 28): inside big (reach 28 < 64) -> positive, not ignored though in the region
    assert p3[3, 3] == 0
    # P4 (24, 24) lies in the region (its square 16..32 is 1/4 covered: not > 0.5) -> BG;
    # the big person's reach from P4 points is > ... <= 64 (P4's lower bound): background
    assert got[16:].tolist() == [BG, BG, BG, BG]
    region = [14.0, 14, 40, 40]  # covers P4 (24, 24)'s square 16..32 fully
    got = fcos(radius=0)(priors, targets([small, region], [False, True])).matched[0]
    assert got[16 + 3] == IG and got[:16].view(4, 4)[1:3, 1:3].eq(0).all()
    assert got[:16].view(4, 4)[3, 3] == IG  # square 24..32 inside the region, not positive


def test_low_quality_gives_a_too_small_person_a_point():
    priors = two_levels()
    tiny = [0.5, 0.5, 2.5, 3.5]  # holds no point
    assert (fcos()(priors, targets([tiny])).matched == BG).all()
    got = fcos(low_quality=True)(priors, targets([tiny])).matched[0]
    assert got.tolist().count(0) == 1 and got[0] == 0  # the nearest square (0..8, 0..8)


def test_empty_and_the_scale_bounds_must_fit_the_levels():
    priors = two_levels()
    empty = Targets(
        torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=bool), torch.zeros(2, 0, dtype=bool)
    )
    assert (fcos()(priors, empty).matched == BG).all()
    with pytest.raises(ValueError, match="assign.scale_bounds has 2 bounds for 2 pyramid levels"):
        fcos(bounds=[10.0, 20.0])(priors, targets([[6.0, 6, 26, 26]]))
    with pytest.raises(ValueError, match="strides"):
        fcos()(Priors(priors.boxes, priors.level_sizes), targets([[6.0, 6, 26, 26]]))


# ----------------------------------------------------------------------------- torchvision


class _NoBackbone(nn.Module):
    out_channels = 32  # FCOS builds its head on it; the matching never runs it


_TV = {}


def torchvision_matches(priors: Priors, t: Targets) -> torch.Tensor:
    """torchvision's FCOS matching of the same points and boxes (matched indices captured from
    its compute_loss; no ignore regions: torchvision has none)."""
    if not _TV:
        _TV["model"] = FCOS(_NoBackbone(), num_classes=2, center_sampling_radius=1.5)
    model, seen = _TV["model"], []
    model.head.compute_loss = lambda targets, outputs, anchors, matched: seen.append(matched)
    per_image = []
    for b in range(len(t.boxes)):
        keep = t.valid[b]
        per_image.append(
            {"boxes": t.boxes[b, keep], "labels": torch.ones(int(keep.sum()), dtype=torch.long)}
        )
    anchors = [priors.boxes] * len(t.boxes)
    model.compute_loss(per_image, {}, anchors, priors.level_sizes)
    # torchvision indexes the image's valid boxes; map back to the padded index
    out = []
    for b, m in enumerate(seen[0]):
        index = t.valid[b].nonzero()[:, 0]
        out.append(torch.where(m >= 0, index[m.clamp(min=0)] if len(index) else m, BG))
    return torch.stack(out)


coord = st.floats(0, 60, allow_nan=False, width=32)  # dense: people share points


@st.composite
def crowds(draw):
    num_images, num_gt = draw(st.integers(1, 3)), draw(st.integers(0, 12))
    boxes = torch.zeros(num_images, num_gt, 4)
    valid = torch.zeros(num_images, num_gt, dtype=torch.bool)
    for b in range(num_images):
        for g in range(num_gt):
            x, y = draw(coord), draw(coord)
            w, h = draw(st.floats(1, 100, width=32)), draw(st.floats(1, 140, width=32))
            boxes[b, g] = torch.tensor([x, y, x + w, y + h])
            valid[b, g] = draw(st.booleans()) or g == 0
    return Targets(boxes, valid, torch.zeros_like(valid))


@settings(max_examples=20, deadline=None)
@given(crowds(), st.sampled_from([5, 2**20]))
def test_matches_torchvision_fcos(t, max_elements):
    priors = point_priors([8, 16, 32])([(16, 16), (8, 8), (4, 4)])
    got = fcos(max_elements=max_elements)(priors, t).matched
    assert torch.equal(got, torchvision_matches(priors, t))


@settings(max_examples=20, deadline=None)
@given(crowds())
def test_with_low_quality_every_person_has_a_point(t):
    priors = point_priors([8, 16, 32])([(16, 16), (8, 8), (4, 4)])
    matched = fcos(low_quality=True)(priors, t).matched
    people = t.valid & ~t.ignore & (box_ops.area(t.boxes) > 0)
    for b, g in people.nonzero().tolist():
        assert (matched[b] == g).any()
