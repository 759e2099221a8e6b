"""Tests of the max-IoU assigner: hand-made cases, a slow reference and properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crowdet import boxes as box_ops
from crowdet.assign.codes import BACKGROUND, IGNORE
from crowdet.assign.common import _blocks, match_quality
from crowdet.assign.max_iou import MaxIoUAssigner
from crowdet.config import MaxIoUAssignConfig
from crowdet.errors import ConfigError
from crowdet.structures import Priors, Targets

BG, IG = BACKGROUND, IGNORE
DEFAULTS = MaxIoUAssignConfig().model_dump(exclude={"name"})  # the one place of the defaults
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def one_image(gt, ignore=None, valid=None):
    """Targets of a single image -> gt_boxes (1, G, 4), valid (1, G), ignore (1, G)."""
    gt = torch.tensor(gt, dtype=torch.float32).reshape(1, -1, 4)
    count = gt.shape[1]
    ignore = torch.zeros(1, count, dtype=torch.bool) if ignore is None else torch.tensor([ignore])
    valid = torch.ones(1, count, dtype=torch.bool) if valid is None else torch.tensor([valid])
    return gt, valid, ignore


def assign(priors, gt, valid, ignore, **overrides):
    """matched (B, A) of the max-IoU assigner with the config's defaults, some overridden."""
    assigner = MaxIoUAssigner(**{**DEFAULTS, **overrides})
    return assigner(Priors(priors, [len(priors)]), Targets(gt, valid, ignore)).matched


def assign_one(priors, gt, ignore=None, valid=None, **kwargs):
    gt, valid, ignore = one_image(gt, ignore, valid)
    priors = torch.tensor(priors, dtype=torch.float32).reshape(-1, 4)
    return assign(priors, gt, valid, ignore, **kwargs)[0].tolist()


def iou_of(a, b):
    return float(box_ops.iou(torch.tensor([a], dtype=torch.float32), torch.tensor([b]))[0, 0])


# ----------------------------------------------------------------------------- hand-made cases

PRIORS = [[0, 0, 10, 10], [10, 10, 20, 20], [5, 5, 15, 15], [32, 32, 38, 42]]


def test_positive_negative_and_in_between():
    gt = [[0, 0, 10, 9], [30, 30, 40, 40]]
    assert iou_of(PRIORS[0], gt[0]) == pytest.approx(90 / 100)  # >= 0.5: positive
    assert iou_of(PRIORS[2], gt[0]) == pytest.approx(20 / (100 + 90 - 20))  # < 0.4: negative
    assert iou_of(PRIORS[3], gt[1]) == pytest.approx(48 / (60 + 100 - 48))  # 0.43: in between
    assert assign_one(PRIORS, gt, low_quality=False) == [0, BG, BG, IG]
    # Person 1 has no positive: its best prior (IoU 3/7) becomes a low-quality match.
    assert assign_one(PRIORS, gt) == [0, BG, BG, 1]


def test_prior_takes_the_person_of_highest_iou():
    gt = [[0, 0, 10, 9], [0, 0, 10, 10]]  # IoU with prior 0: 0.9 and 1.0
    assert assign_one(PRIORS, gt, low_quality=False) == [1, BG, BG, BG]


def test_thresholds_are_inclusive_for_positives_and_strict_for_negatives():
    prior = [[0, 0, 10, 10]]
    half = [[0, 0, 10, 20]]  # IoU exactly 100 / 200
    assert assign_one(prior, half, pos_iou=0.5, low_quality=False) == [0]
    assert assign_one(prior, half, pos_iou=0.6, neg_iou=0.5, low_quality=False) == [IG]
    assert assign_one(prior, half, pos_iou=0.7, neg_iou=0.6, low_quality=False) == [BG]


def test_ignore_region_covering_a_prior():
    priors = [[0, 0, 10, 10], [15, 15, 25, 25], [10, 0, 30, 10], [30, 30, 40, 40]]
    gt = [[0, 0, 20, 20], [30, 30, 40, 40]]
    ignore = [True, False]
    # IoA of the priors with the region: 100/100, 25/100, 100/200 (not > 0.5), 0.
    assert assign_one(priors, gt, ignore) == [IG, BG, BG, 1]
    assert assign_one(priors, gt, ignore, ignore_ioa=0.2) == [IG, IG, IG, 1]


def test_positive_inside_an_ignore_region_stays_positive():
    priors = [[0, 0, 10, 10], [10, 10, 20, 20]]
    gt = [[0, 0, 20, 20], [0, 0, 10, 10]]
    assert assign_one(priors, gt, [True, False]) == [1, IG]


def test_duplicate_people_share_the_best_prior():
    # Both people are [0,0,10,10]: prior 0 (IoU 1) goes to person 0, prior 2 (IoU 100/200) is a
    # surplus positive of person 0 and is handed to person 1, who had nothing.
    priors = [[0, 0, 10, 10], [100, 100, 110, 110], [0, 0, 10, 20], [0, 5, 10, 15]]
    gt = [[0, 0, 10, 10], [0, 0, 10, 10]]
    assert iou_of(priors[3], gt[0]) == pytest.approx(50 / 150)
    assert assign_one(priors, gt, low_quality=False) == [0, BG, 0, BG]
    assert assign_one(priors, gt) == [0, BG, 1, BG]


def test_second_person_gets_its_best_prior_not_taken():
    priors = [[0, 0, 10, 10], [20, 0, 30, 10], [0, 10, 10, 20], [5, 0, 15, 10]]
    gt = [[0, 0, 10, 10], [1, 0, 11, 10]]
    assert iou_of(priors[0], gt[1]) == pytest.approx(90 / 110)  # but person 0 has IoU 1
    assert iou_of(priors[3], gt[1]) == pytest.approx(60 / 140)
    assert assign_one(priors, gt, low_quality=False) == [0, BG, BG, IG]
    assert assign_one(priors, gt) == [0, BG, BG, 1]


def test_contest_goes_to_the_person_overlapping_most():
    priors = [[0, 0, 10, 10], [50, 50, 60, 60]]
    gt = [[0, 0, 10, 30], [0, 0, 10, 20]]  # IoU 1/3 and 1/2 with prior 0, nothing else
    assert assign_one(priors, gt, pos_iou=0.9, neg_iou=0.1) == [1, 0]


def test_person_overlapping_no_prior_gets_the_nearest_one():
    priors = [[0, 0, 10, 10], [50, 50, 60, 60], [100, 0, 110, 10]]
    assert assign_one(priors, [[62, 50, 72, 60]]) == [BG, 0, BG]
    assert assign_one(priors, [[62, 50, 72, 60]], low_quality=False) == [BG, BG, BG]


def test_more_people_than_priors():
    priors = [[0, 0, 10, 10]]
    gt = [[0, 0, 10, 12], [0, 0, 10, 11], [0, 0, 10, 30]]
    assert assign_one(priors, gt) == [1]


def test_zero_area_person_is_never_matched():
    priors = [[0, 0, 10, 10], [5, 5, 5, 15]]
    assert assign_one(priors, [[5, 5, 5, 15]]) == [BG, BG]
    assert assign_one(priors, [[5, 5, 5, 15], [0, 0, 10, 10]]) == [1, BG]


def test_invalid_rows_are_ignored():
    priors = [[0, 0, 10, 10], [10, 10, 20, 20]]
    gt = [[0, 0, 10, 10], [10, 10, 20, 20]]
    assert assign_one(priors, gt, valid=[False, True]) == [BG, 1]
    assert assign_one(priors, gt, ignore=[True, False], valid=[False, True]) == [BG, 1]


def test_empty_gt():
    gt, valid, ignore = one_image([])
    priors = torch.tensor(PRIORS, dtype=torch.float32)
    assert assign(priors, gt, valid, ignore).tolist() == [[BG] * 4]
    batch = assign(
        priors, torch.zeros(3, 0, 4), torch.zeros(3, 0, dtype=bool), torch.zeros(3, 0, dtype=bool)
    )
    assert batch.tolist() == [[BG] * 4] * 3 and batch.dtype == torch.long


def test_empty_priors():
    gt, valid, ignore = one_image([[0, 0, 10, 10]])
    matched = assign(torch.zeros(0, 4), gt, valid, ignore)
    assert matched.shape == (1, 0) and matched.dtype == torch.long


def test_ignore_only_image():
    assert assign_one(PRIORS, [[0, 0, 16, 16]], ignore=[True]) == [IG, BG, IG, BG]


def test_batch_of_different_images():
    priors = torch.tensor(PRIORS, dtype=torch.float32)
    gt = torch.tensor([[[0, 0, 10, 9], [30, 30, 40, 40]], [[0, 0, 16, 16], [0, 0, 0, 0]]])
    valid = torch.tensor([[True, True], [True, False]])
    ignore = torch.tensor([[False, False], [True, False]])
    matched = assign(priors, gt, valid, ignore)
    assert matched.tolist() == [[0, BG, BG, 1], [IG, BG, IG, BG]]


def test_bad_arguments():
    gt, valid, ignore = one_image([[0, 0, 10, 10]])
    priors = torch.tensor(PRIORS, dtype=torch.float32)
    with pytest.raises(ConfigError, match="neg_iou"):
        assign(priors, gt, valid, ignore, pos_iou=0.4, neg_iou=0.5)
    with pytest.raises(ValueError, match=r"target boxes must have shape \(B, G, 4\)"):
        assign(priors, gt[0], valid, ignore)
    with pytest.raises(ValueError, match="priors"):
        assign(priors[:, :3], gt, valid, ignore)


def test_match_quality_formulas():
    gt = torch.tensor([[[0.0, 0, 10, 10]]])
    priors = torch.tensor([[5.0, 0, 15, 10], [20, 0, 30, 10], [0, 20, 10, 30], [3, 3, 3, 3]])
    quality = match_quality(gt, priors)[0, 0]
    # Overlap: the IoU. Apart: -1 - (enclosing - union) / enclosing.
    expected = [50 / 150, -1 - (300 - 200) / 300, -1 - (300 - 200) / 300, -1 - (100 - 100) / 100]
    assert quality.tolist() == pytest.approx(expected, abs=1e-6)
    zero = match_quality(torch.zeros(1, 1, 4), torch.zeros(1, 4))
    assert torch.isfinite(zero).all()


def test_blocks_cover_everything_within_budget():
    for images, per_prior, priors, budget in [
        (3, 5, 7, 1),
        (3, 5, 7, 20),
        (4, 2, 9, 50),
        (2, 0, 5, 3),
    ]:
        seen = np.zeros((images, priors), dtype=int)
        for bs, ps in _blocks(images, per_prior, priors, budget):
            block = seen[bs, ps]
            assert block.size * max(per_prior, 1) <= max(budget, per_prior)
            seen[bs, ps] += 1
        assert (seen == 1).all()


# ----------------------------------------------------------------------------- slow reference


def reference_assign(priors, gt, valid, ignore, pos_iou=0.5, neg_iou=0.4, ignore_ioa=0.5):
    """Per image, per prior, per person loops over the rules of crowdet.assign.max_iou."""
    num_images, num_gt = valid.shape
    matched = torch.full((num_images, len(priors)), BG, dtype=torch.long)
    for b in range(num_images):
        iou = box_ops.iou(gt[b], priors).tolist()  # (G, A)
        ioa = box_ops.ioa(priors, gt[b]).tolist()  # (A, G)
        quality = match_quality(gt[b][None], priors)[0].tolist()  # (G, A)
        people = [
            g
            for g in range(num_gt)
            if valid[b, g] and not ignore[b, g] and box_ops.area(gt[b, g]) > 0
        ]
        regions = [g for g in range(num_gt) if valid[b, g] and ignore[b, g]]
        row = []
        for a in range(len(priors)):
            best, best_g = -1.0, -1
            for g in people:
                if iou[g][a] > best:
                    best, best_g = iou[g][a], g
            code = best_g if best >= pos_iou else BG if best < neg_iou else IG
            if code < 0 and any(ioa[a][g] > ignore_ioa for g in regions):
                code = IG
            row.append(code)
        reference_rounds(row, people, iou, quality)
        matched[b] = torch.tensor(row)
    return matched


def reference_rounds(row, people, iou, quality):
    locked, pending = set(), []
    for g in people:
        mine = [a for a, code in enumerate(row) if code == g]
        if mine:
            locked.add(max(mine, key=lambda a: (iou[g][a], -a)))
        else:
            pending.append(g)
    while pending:
        winners = {}
        for g in pending:
            best_a, best_key = None, float("-inf")
            for a in range(len(row)):
                if a not in locked and quality[g][a] > best_key:
                    best_a, best_key = a, quality[g][a]
            if best_a is not None and (best_a not in winners or best_key > winners[best_a][1]):
                winners[best_a] = (g, best_key)
        if not winners:
            return
        for a, (g, _) in winners.items():
            row[a] = g
            locked.add(a)
            pending.remove(g)


def grid_priors(size=64, stride=8, scales=(8, 16)):
    """Priors centred on a grid, two square sizes: (len(scales) * (size/stride)^2, 4)."""
    centres = torch.arange(stride / 2, size, stride, dtype=torch.float32)
    cy, cx = torch.meshgrid(centres, centres, indexing="ij")
    out = [
        torch.stack([cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2], -1).reshape(-1, 4)
        for s in scales
    ]
    return torch.cat(out)


def crowded_batch(rng, num_images=3, num_gt=30, size=64, spread=6.0):
    """Clustered people on integer pixels (many ties), duplicates, zero-area and ignore rows."""
    centre = rng.uniform(16, size - 16, (num_images, 1, 2))
    xy = np.round(centre + rng.normal(0, spread, (num_images, num_gt, 2)))
    wh = np.round(rng.uniform(3, 14, (num_images, num_gt, 1)) * np.array([1.0, 2.0]))
    gt = np.concatenate([xy - wh / 2, xy + wh / 2], -1)
    dup = rng.random((num_images, num_gt)) < 0.15
    gt[:, 1:][dup[:, 1:]] = gt[:, :-1][dup[:, 1:]]
    flat = rng.random((num_images, num_gt)) < 0.05
    gt[flat, 2] = gt[flat, 0]
    valid = rng.random((num_images, num_gt)) < 0.85
    ignore = rng.random((num_images, num_gt)) < 0.1
    return torch.tensor(gt, dtype=torch.float32), torch.tensor(valid), torch.tensor(ignore)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", range(6))
def test_matches_slow_reference_on_crowds(seed, device):
    rng = np.random.default_rng(seed)
    priors = grid_priors()
    gt, valid, ignore = crowded_batch(rng)
    thresholds = dict(pos_iou=0.5, neg_iou=0.4, ignore_ioa=0.5)
    if seed % 2:
        thresholds = dict(pos_iou=0.35, neg_iou=0.2, ignore_ioa=0.3)
    expected = reference_assign(priors, gt, valid, ignore, **thresholds)
    to = dict(device=device)
    matched = assign(priors.to(**to), gt.to(**to), valid.to(**to), ignore.to(**to), **thresholds)
    assert matched.device.type == device
    assert torch.equal(matched.cpu(), expected)
    chunked = assign(priors, gt, valid, ignore, max_elements=97, **thresholds)
    assert torch.equal(chunked, expected)


def test_500_people_chunked_equals_unchunked():
    rng = np.random.default_rng(7)
    priors = grid_priors(size=256, stride=8, scales=(8, 16, 32))
    gt, valid, ignore = crowded_batch(rng, num_images=2, num_gt=600, size=256, spread=40.0)
    whole = assign(priors, gt, valid, ignore, max_elements=2**30)
    chunked = assign(priors, gt, valid, ignore, max_elements=2**16)
    assert torch.equal(whole, chunked)
    people = valid & ~ignore & (box_ops.area(gt) > 0)
    for b in range(2):
        matched_people = set(whole[b][whole[b] >= 0].tolist())
        assert matched_people == set(torch.nonzero(people[b]).flatten().tolist())


# ----------------------------------------------------------------------------- properties

coord = st.integers(min_value=0, max_value=24)


@st.composite
def box_lists(draw, min_size=0, max_size=8):
    """Integer xyxy boxes with x1 <= x2, y1 <= y2 (zero-area boxes included)."""
    count = draw(st.integers(min_value=min_size, max_value=max_size))
    out = []
    for _ in range(count):
        x1, y1 = draw(coord), draw(coord)
        w, h = draw(st.integers(0, 12)), draw(st.integers(0, 12))
        out.append([x1, y1, x1 + w, y1 + h])
    return out


@st.composite
def scenes(draw):
    gt = draw(box_lists(min_size=1, max_size=8))
    ignore = draw(st.lists(st.booleans(), min_size=len(gt), max_size=len(gt)))
    valid = draw(st.lists(st.booleans(), min_size=len(gt), max_size=len(gt)))
    priors = draw(box_lists(min_size=1, max_size=10))
    return (
        torch.tensor(priors, dtype=torch.float32),
        torch.tensor([gt], dtype=torch.float32),
        torch.tensor([valid]),
        torch.tensor([ignore]),
    )


@PROPERTY
@given(scenes())
def test_every_person_gets_a_positive_when_priors_suffice(scene):
    priors, gt, valid, ignore = scene
    people = (valid & ~ignore & (box_ops.area(gt) > 0))[0]
    matched = assign(priors, gt, valid, ignore)[0]
    positives = set(matched[matched >= 0].tolist())
    assert positives <= set(torch.nonzero(people).flatten().tolist())
    # Each matched person locks one prior of its own, so with more people than priors every prior
    # ends up positive for a different person.
    assert len(positives) == min(len(priors), int(people.sum()))


@PROPERTY
@given(scenes(), box_lists(min_size=1, max_size=4), st.booleans())
def test_padding_with_invalid_rows_changes_nothing(scene, padding, padded_ignore):
    priors, gt, valid, ignore = scene
    pad = torch.tensor([padding], dtype=torch.float32)
    padded = assign(
        priors,
        torch.cat([gt, pad], 1),
        torch.cat([valid, torch.zeros(1, len(padding), dtype=torch.bool)], 1),
        torch.cat([ignore, torch.full((1, len(padding)), padded_ignore)], 1),
    )
    assert torch.equal(padded, assign(priors, gt, valid, ignore))


@PROPERTY
@given(scenes(), st.sampled_from([1, 3, 7, 40]))
def test_chunked_equals_unchunked(scene, max_elements):
    priors, gt, valid, ignore = scene
    chunked = assign(priors, gt, valid, ignore, max_elements=max_elements)
    assert torch.equal(chunked, assign(priors, gt, valid, ignore))


@PROPERTY
@given(st.integers(0, 2**32 - 1), st.integers(1, 12), st.integers(1, 20))
def test_permuting_gt_permutes_the_assignment(seed, num_gt, num_priors):
    # Continuous random boxes: no two people tie on a prior, so the assignment is unique.
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 40, (num_priors + 2 * num_gt, 2))
    wh = rng.uniform(2, 20, (num_priors + 2 * num_gt, 2))
    boxes = torch.tensor(np.concatenate([xy, xy + wh], 1), dtype=torch.float32)
    priors, gt = boxes[:num_priors], boxes[num_priors:].reshape(2, num_gt, 4)
    valid = torch.tensor(rng.random((2, num_gt)) < 0.8)
    ignore = torch.tensor(rng.random((2, num_gt)) < 0.2)
    perm = torch.tensor(rng.permutation(num_gt))
    matched = assign(priors, gt, valid, ignore)
    permuted = assign(priors, gt[:, perm], valid[:, perm], ignore[:, perm])
    # Entry g of the permuted targets is entry perm[g] of the original ones.
    mapped = torch.where(permuted >= 0, perm[permuted.clamp(min=0)], permuted)
    assert torch.equal(mapped, matched)
