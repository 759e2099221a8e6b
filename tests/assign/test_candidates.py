"""Windowed candidate pairs: the same assignment as the dense computation, on prior grids."""

from __future__ import annotations

from unittest.mock import patch

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crowdet.assign.atss as atss_module
import crowdet.assign.common as common_module
import crowdet.assign.max_iou as max_iou_module
from crowdet import boxes as box_ops
from crowdet.assign.atss import ATSSAssigner
from crowdet.assign.candidates import infer_grids, iou_pairs
from crowdet.assign.max_iou import MaxIoUAssigner
from crowdet.models.anchors import AnchorGenerator, point_priors
from crowdet.structures import Priors, Targets

PROPERTY = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STRIDES = [8, 16, 32]
SIZE = (96, 128)  # height, width


def anchors() -> Priors:
    gen = AnchorGenerator(STRIDES, 4.0, [1.0, 2 ** (1 / 3), 2 ** (2 / 3)], [1.0, 2.0, 2.44])
    return gen([(SIZE[0] // s, SIZE[1] // s) for s in STRIDES])


def points() -> Priors:
    return point_priors(STRIDES)([(SIZE[0] // s, SIZE[1] // s) for s in STRIDES])


def crowd(seed: int, num_images: int, num_gt: int, integer: bool) -> Targets:
    """People of 2 to 120 px around the image (some outside it), duplicates, ignore regions."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(num_images, num_gt, 2, generator=g) * torch.tensor([SIZE[1], SIZE[0]])
    wh = torch.rand(num_images, num_gt, 2, generator=g) * torch.tensor([50.0, 120.0]) + 2
    xy = xy * 1.2 - 10
    if integer:  # ties on IoU and on centre distances
        xy, wh = xy.round(), wh.round()
    boxes = torch.cat([xy - wh / 2, xy + wh / 2], -1)
    dup = torch.rand(num_images, num_gt, generator=g) < 0.2
    boxes[:, 1:][dup[:, 1:]] = boxes[:, :-1][dup[:, 1:]]
    valid = torch.rand(num_images, num_gt, generator=g) < 0.9
    ignore = torch.rand(num_images, num_gt, generator=g) < 0.1
    return Targets(boxes, valid, ignore)


def dense(assigner, priors, targets):
    """The assignment with the grid turned off: every prior against every person."""
    off = dict(new=lambda *a: None)
    with patch.object(atss_module, "infer_grids", **off):
        with patch.object(max_iou_module, "infer_grids", **off):
            return assigner(priors, targets).matched


def test_grids_are_recognised_and_other_layouts_are_not():
    priors = anchors()
    grid = infer_grids(priors.boxes, priors.level_sizes)
    assert grid is not None and len(grid.start) == 3 * 9
    assert grid.cols[0] == SIZE[1] // 8 and grid.rows[0] == SIZE[0] // 8
    assert infer_grids(points().boxes, points().level_sizes) is not None
    shuffled = priors.boxes[torch.randperm(len(priors.boxes), generator=torch.Generator())]
    assert infer_grids(shuffled, priors.level_sizes) is None
    assert infer_grids(priors.boxes, [len(priors.boxes)]) is None  # levels joined: no grid


@pytest.mark.parametrize("threshold", [0.05, 0.3, 0.5])
def test_iou_pairs_are_exactly_the_pairs_above_the_threshold(threshold):
    priors = anchors()
    targets = crowd(1, 2, 25, integer=False)
    who = targets.valid & ~targets.ignore & (box_ops.area(targets.boxes) > 0)
    grid = infer_grids(priors.boxes, priors.level_sizes)
    pairs = iou_pairs(grid, priors.boxes, targets.boxes, who, threshold, max_elements=500)
    iou = box_ops.iou(targets.boxes, priors.boxes[None])  # (B, G, A)
    keep = (iou >= threshold) & who[..., None]
    expected = sorted(zip(*(t.tolist() for t in keep.nonzero(as_tuple=True))))
    got = sorted(zip(pairs.image.tolist(), pairs.person.tolist(), pairs.prior.tolist()))
    assert got == expected
    assert torch.equal(pairs.iou, iou[pairs.image, pairs.person, pairs.prior])


@pytest.mark.slow
@PROPERTY
@given(
    st.integers(0, 2**31 - 1),
    st.integers(1, 40),
    st.booleans(),
    st.sampled_from([(0.5, 0.4), (0.4, 0.3), (0.35, 0.1)]),
    st.sampled_from([3000, 2**20]),
)
def test_max_iou_on_grids_equals_dense(seed, num_gt, integer, thresholds, budget):
    pos, neg = thresholds
    assigner = MaxIoUAssigner(pos, neg, 0.5, low_quality=True, max_elements=budget)
    priors, targets = anchors(), crowd(seed, 2, num_gt, integer)
    assert torch.equal(assigner(priors, targets).matched, dense(assigner, priors, targets))


@pytest.mark.slow
@PROPERTY
@given(
    st.integers(0, 2**31 - 1),
    st.integers(1, 40),
    st.booleans(),
    st.sampled_from([1, 4, 9, 13]),
    st.booleans(),
)
def test_atss_on_grids_equals_dense(seed, num_gt, integer, topk, on_points):
    assigner = ATSSAssigner(topk, 0.5, low_quality=True, max_elements=3000)
    priors, targets = (points() if on_points else anchors()), crowd(seed, 2, num_gt, integer)
    assert torch.equal(assigner(priors, targets).matched, dense(assigner, priors, targets))


def test_rounds_fall_back_to_every_prior_for_people_far_from_all():
    """A person overlapping no prior: its proposal comes from every prior (by GIoU)."""
    priors = anchors()
    boxes = torch.tensor(
        [[[40.0, 40.0, 41.0, 41.5], [10.0, 10.0, 40.0, 80.0], [300, 300, 310, 330]]]
    )
    targets = Targets(
        boxes, torch.ones(1, 3, dtype=torch.bool), torch.zeros(1, 3, dtype=torch.bool)
    )
    assigner = MaxIoUAssigner(0.5, 0.4, 0.5, low_quality=True, max_elements=2**20)
    matched = assigner(priors, targets).matched
    assert set(matched[matched >= 0].tolist()) == {0, 1, 2}  # 2 lies outside the image
    assert torch.equal(matched, dense(assigner, priors, targets))
    assert common_module.ROUND_IOU == 0


def test_empty_levels_keep_the_windows_of_the_others_in_place():
    """A pyramid level without priors (an input too small for it) between levels that have."""
    full = anchors()
    sizes = full.level_sizes
    cut = sizes[0]
    priors = Priors(full.boxes, [cut, 0, *sizes[1:]])
    targets = crowd(4, 2, 15, integer=False)
    assigner = ATSSAssigner(9, 0.5, low_quality=True, max_elements=2**20)
    assert torch.equal(assigner(priors, targets).matched, dense(assigner, priors, targets))
