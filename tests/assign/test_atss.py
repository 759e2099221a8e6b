"""Tests of the ATSS assigner: hand-made cases, a slow reference and properties."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_max_iou import crowded_batch, reference_rounds

from crowdet import boxes as box_ops
from crowdet.assign.atss import ATSSAssigner
from crowdet.assign.codes import BACKGROUND, IGNORE
from crowdet.assign.common import match_quality
from crowdet.config import ATSSAssignConfig, load_config
from crowdet.errors import ConfigError
from crowdet.models.build import build_detector, build_loss
from crowdet.structures import Batch, Priors, Targets

BG, IG = BACKGROUND, IGNORE
DEFAULTS = ATSSAssignConfig().model_dump(exclude={"name"})  # the one place of the defaults
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assign(priors, gt, valid, ignore, level_sizes=None, **overrides):
    """matched (B, A) of the ATSS assigner with the config's defaults, some overridden; one
    level of priors unless level_sizes says otherwise."""
    sizes = [len(priors)] if level_sizes is None else level_sizes
    assigner = ATSSAssigner(**{**DEFAULTS, **overrides})
    return assigner(Priors(priors, sizes), Targets(gt, valid, ignore)).matched


def assign_one(priors, gt, ignore=None, **kwargs):
    gt = torch.tensor(gt, dtype=torch.float32).reshape(1, -1, 4)
    count = gt.shape[1]
    ignore = torch.zeros(1, count, dtype=torch.bool) if ignore is None else torch.tensor([ignore])
    valid = torch.ones(1, count, dtype=torch.bool)
    priors = torch.tensor(priors, dtype=torch.float32).reshape(-1, 4)
    return assign(priors, gt, valid, ignore, **kwargs)[0].tolist()


def iou_of(a, b):
    return float(box_ops.iou(torch.tensor([a], dtype=torch.float32), torch.tensor([b]))[0, 0])


# ----------------------------------------------------------------------------- hand-made cases

# Two levels: five 10x10 priors along y 0-10, then three 20x20 priors along y 0-20.
LEVEL0 = [[x - 5, 0, x + 5, 10] for x in (5, 15, 25, 35, 45)]
LEVEL1 = [[x - 10, 0, x + 10, 20] for x in (10, 30, 50)]
TWO_LEVELS = LEVEL0 + LEVEL1


def test_threshold_is_mean_plus_std_of_the_nearest_candidates_per_level():
    gt = [12, 0, 24, 14]  # centre (18, 7)
    # topk=2: nearest centres are x=15, 25 on level 0 and x=10, 30 on level 1
    candidates = [1, 2, 5, 6]
    ious = [iou_of(TWO_LEVELS[a], gt) for a in candidates]
    assert ious == pytest.approx([80 / 188, 40 / 228, 112 / 456, 56 / 512], abs=1e-6)
    threshold = statistics.mean(ious) + statistics.stdev(ious)
    assert 0.37 < threshold < 0.38  # only prior 1 (IoU 0.43) passes; max-IoU at 0.5 takes none
    expected = [BG, 0, BG, BG, BG, BG, BG, BG]
    got = assign_one(TWO_LEVELS, [gt], level_sizes=[5, 3], topk=2, low_quality=False)
    assert got == expected
    # One level of 8: the 2 nearest centres overall are priors 1 and 2. With two candidates the
    # mean plus the standard deviation is above the larger IoU, so neither is positive.
    assert statistics.mean(ious[:2]) + statistics.stdev(ious[:2]) > ious[0]
    assert assign_one(TWO_LEVELS, [gt], topk=2, low_quality=False) == [BG] * 8


def test_candidate_centre_must_lie_strictly_inside_the_person():
    priors = [[4, 0, 16, 10], [50, 50, 60, 60]]  # prior 0's centre (10, 5) is on the right edge
    gt = [[0, 0, 10, 10]]
    assert assign_one(priors, gt, topk=1, low_quality=False) == [BG, BG]
    assert assign_one(priors, gt, topk=1) == [0, BG]  # a low-quality match instead
    inside = [[3.9, 0, 15.9, 10], [50, 50, 60, 60]]  # centre 9.9: inside
    assert assign_one(inside, gt, topk=1, low_quality=False) == [0, BG]


def test_shared_positive_goes_to_the_person_overlapping_most():
    priors = [[0, 0, 10, 10], [100, 100, 110, 110]]
    gt = [[0, 0, 10, 12], [0, 0, 10, 11]]  # IoU 0.83 and 0.91 with prior 0
    assert assign_one(priors, gt, topk=1, low_quality=False) == [1, BG]
    # person 0 lost its only candidate: the rounds give it the nearest free prior
    assert assign_one(priors, gt, topk=1) == [1, 0]


def test_ties_go_to_the_lowest_person_index():
    priors = [[0, 0, 10, 10], [100, 100, 110, 110]]
    gt = [[0, 0, 10, 12], [0, 0, 10, 12]]
    assert assign_one(priors, gt, topk=1, low_quality=False) == [0, BG]


def test_ignore_regions_turn_negatives_into_ignore_but_keep_positives():
    gt = [[12, 0, 24, 14], [0, 0, 30, 10]]  # the second row is an ignore region
    got = assign_one(TWO_LEVELS, gt, ignore=[False, True], level_sizes=[5, 3], topk=2)
    # priors 0-2 lie inside the region (IoA 1) but prior 1 is positive; level-1 priors are
    # covered by less than half
    assert got == [IG, 0, IG, BG, BG, BG, BG, BG]


def test_no_in_between_zone():
    got = assign_one(TWO_LEVELS, [[12, 0, 24, 14]], level_sizes=[5, 3], topk=2)
    assert set(got) == {0, BG}


def test_empty_inputs():
    priors = torch.tensor(TWO_LEVELS, dtype=torch.float32)
    none = torch.zeros(3, 0, dtype=torch.bool)
    matched = assign(priors, torch.zeros(3, 0, 4), none, none, level_sizes=[5, 3])
    assert matched.tolist() == [[BG] * 8] * 3 and matched.dtype == torch.long
    gt = torch.tensor([[[0.0, 0, 10, 10]]])
    one = torch.ones(1, 1, dtype=torch.bool)
    assert assign(torch.zeros(0, 4), gt, one, ~one, level_sizes=[0]).shape == (1, 0)
    # only ignore regions and padding: no person, so no positive
    assert assign_one(TWO_LEVELS, [[0, 0, 30, 10]], ignore=[True]) == [IG] * 3 + [BG] * 5


def test_bad_arguments():
    priors = torch.tensor(TWO_LEVELS, dtype=torch.float32)
    gt = torch.tensor([[[0.0, 0, 10, 10]]])
    one = torch.ones(1, 1, dtype=torch.bool)
    with pytest.raises(ValueError, match="level_sizes"):
        assign(priors, gt, one, ~one, level_sizes=[5, 2])
    with pytest.raises(ConfigError, match="topk"):
        assign(priors, gt, one, ~one, topk=0)
    with pytest.raises(ValueError, match="target boxes"):
        assign(priors, gt[0], one, ~one)


# ----------------------------------------------------------------------------- slow reference


def reference_atss(priors, level_sizes, gt, valid, ignore, topk, ignore_ioa=0.5):
    """Per image, per person, per prior loops over the rules of crowdet.assign.atss (the
    rounds: crowdet.assign.common)."""
    num_images, num_gt = valid.shape
    centres = ((priors[:, :2] + priors[:, 2:]) / 2).tolist()
    levels, start = [], 0
    for size in level_sizes:
        levels.append(range(start, start + size))
        start += size
    matched = torch.full((num_images, len(priors)), BG, dtype=torch.long)
    for b in range(num_images):
        iou = box_ops.iou(gt[b], priors).tolist()  # (G, A)
        ioa = box_ops.ioa(priors, gt[b]).tolist()  # (A, G)
        quality = match_quality(gt[b][None], priors)[0].tolist()
        people = [
            g
            for g in range(num_gt)
            if valid[b, g] and not ignore[b, g] and box_ops.area(gt[b, g]) > 0
        ]
        regions = [g for g in range(num_gt) if valid[b, g] and ignore[b, g]]
        claims = {}  # prior -> [(iou, person)]
        for g in people:
            x1, y1, x2, y2 = gt[b, g].tolist()
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            cand = []
            for level in levels:
                by_distance = sorted(
                    level, key=lambda a: (centres[a][0] - cx) ** 2 + (centres[a][1] - cy) ** 2
                )
                cand += by_distance[:topk]
            values = [iou[g][a] for a in cand]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            threshold = statistics.mean(values) + spread
            for a in cand:
                px, py = centres[a]
                inside = min(px - x1, py - y1, x2 - px, y2 - py) > box_ops.EPS
                if iou[g][a] >= threshold and inside:
                    claims.setdefault(a, []).append((iou[g][a], g))
        row = []
        for a in range(len(priors)):
            if a in claims:
                best = max(value for value, _ in claims[a])
                row.append(min(g for value, g in claims[a] if value == best))
            elif any(ioa[a][g] > ignore_ioa for g in regions):
                row.append(IG)
            else:
                row.append(BG)
        reference_rounds(row, people, iou, quality)
        matched[b] = torch.tensor(row)
    return matched


def pyramid_priors(size=64, strides=(8, 16), scales=(1.0, 2.0)):
    """Grid priors on several levels, len(scales) squares of side stride * scale per place."""
    out, sizes = [], []
    for stride in strides:
        centres = torch.arange(stride / 2, size, stride, dtype=torch.float32)
        cy, cx = torch.meshgrid(centres, centres, indexing="ij")
        half = [s * stride / 2 for s in scales]
        level = torch.stack(
            [torch.stack([cx - h, cy - h, cx + h, cy + h], -1) for h in half], dim=2
        ).reshape(-1, 4)
        out.append(level)
        sizes.append(len(level))
    return torch.cat(out), sizes


def jittered(gt: torch.Tensor, rng) -> torch.Tensor:
    """Move integer boxes by a fraction of a pixel, so no two priors tie on distance."""
    shift = torch.tensor(rng.uniform(0.01, 0.49, (*gt.shape[:2], 2)), dtype=torch.float32)
    return gt + shift.repeat(1, 1, 2)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", range(6))
def test_matches_slow_reference_on_crowds(seed, device):
    rng = np.random.default_rng(seed)
    priors, sizes = pyramid_priors()
    gt, valid, ignore = crowded_batch(rng)
    gt = jittered(gt, rng)
    # whole places: the scales at one place share a centre, and topk takes all or none of them
    topk = 2 * (1 + seed % 3)
    expected = reference_atss(priors, sizes, gt, valid, ignore, topk)
    to = dict(device=device)
    matched = assign(
        priors.to(**to), gt.to(**to), valid.to(**to), ignore.to(**to), sizes, topk=topk
    )
    assert matched.device.type == device
    assert torch.equal(matched.cpu(), expected)
    chunked = assign(priors, gt, valid, ignore, sizes, topk=topk, max_elements=97)
    assert torch.equal(chunked, expected)


def test_500_people_every_person_gets_a_positive():
    rng = np.random.default_rng(3)
    priors, sizes = pyramid_priors(size=256, strides=(8, 16, 32), scales=(1.0, 1.5, 2.0))
    gt, valid, ignore = crowded_batch(rng, num_images=2, num_gt=600, size=256, spread=40.0)
    whole = assign(priors, gt, valid, ignore, sizes, max_elements=2**30)
    chunked = assign(priors, gt, valid, ignore, sizes, max_elements=2**12)
    assert torch.equal(whole, chunked)
    people = valid & ~ignore & (box_ops.area(gt) > 0)
    for b in range(2):
        matched_people = set(whole[b][whole[b] >= 0].tolist())
        assert matched_people == set(torch.nonzero(people[b]).flatten().tolist())


# ----------------------------------------------------------------------------- properties


@PROPERTY
@given(st.integers(0, 2**32 - 1), st.integers(1, 10), st.integers(1, 4))
def test_properties_on_random_scenes(seed, num_gt, topk):
    rng = np.random.default_rng(seed)
    priors, sizes = pyramid_priors(size=32, strides=(8, 16))
    xy = rng.uniform(0, 28, (2, num_gt, 2))
    wh = rng.uniform(0, 16, (2, num_gt, 2))
    gt = torch.tensor(np.concatenate([xy, xy + wh], -1), dtype=torch.float32)
    valid = torch.tensor(rng.random((2, num_gt)) < 0.8)
    ignore = torch.tensor(rng.random((2, num_gt)) < 0.2)
    matched = assign(priors, gt, valid, ignore, sizes, topk=topk)
    people = valid & ~ignore & (box_ops.area(gt) > 0)
    for b in range(2):
        # every person has a positive; positives belong to people only
        positives = set(matched[b][matched[b] >= 0].tolist())
        assert positives == set(torch.nonzero(people[b]).flatten().tolist())
    # padding with invalid rows changes nothing
    pad = torch.tensor(rng.uniform(0, 30, (2, 3, 4)), dtype=torch.float32).sort(-1).values
    padded = assign(
        priors,
        torch.cat([gt, pad], 1),
        torch.cat([valid, torch.zeros(2, 3, dtype=torch.bool)], 1),
        torch.cat([ignore, torch.ones(2, 3, dtype=torch.bool)], 1),
        sizes,
        topk=topk,
    )
    assert torch.equal(padded, matched)
    # each image alone gives its row of the batch
    alone = assign(priors, gt[1:], valid[1:], ignore[1:], sizes, topk=topk)
    assert torch.equal(alone[0], matched[1])


# ----------------------------------------------------------------------------- in the detector


def test_detector_trains_with_atss_from_config():
    cfg = load_config("configs/tiny.yaml", ["assign.name=atss", "assign.topk=4"])
    seen = {}
    loss = build_loss(cfg)
    assigner = loss.assigner
    assert isinstance(assigner, ATSSAssigner) and assigner.topk == 4

    class Spy:
        uses_predictions = False

        def __call__(self, priors, targets, predictions=None):
            seen["sizes"], seen["priors"] = priors.level_sizes, len(priors.boxes)
            out = assigner(priors, targets, predictions)
            seen["positives"] = int((out.matched >= 0).sum())
            return out

    loss.assigner = Spy()
    model = build_detector(cfg)
    model.loss_fn = loss
    batch = _batch([[[10.0, 8.0, 30.0, 50.0], [40.0, 10.0, 56.0, 44.0]]])
    losses = model.loss(batch)
    assert all(torch.isfinite(v) for v in losses.values()) and losses["box"].item() > 0
    assert sum(seen["sizes"]) == seen["priors"] and len(seen["sizes"]) == len(cfg.model.neck.levels)
    assert seen["positives"] >= 2


def test_unknown_assigner_names_the_choices():
    with pytest.raises(
        ConfigError, match=r"'assign.name': unknown name 'atts'; did you mean 'atss'"
    ):
        load_config("configs/tiny.yaml", ["assign.name=atts"])


def _batch(boxes, size=64):
    g = max(len(x) for x in boxes)
    t = torch.zeros(len(boxes), g, 4)
    valid = torch.zeros(len(boxes), g, dtype=torch.bool)
    for i, bx in enumerate(boxes):
        t[i, : len(bx)] = torch.tensor(bx)
        valid[i, : len(bx)] = True
    n = len(boxes)
    return Batch(
        images=torch.randn(n, 3, size, size),
        image_sizes=torch.tensor([[size, size]] * n),
        boxes=t,
        valid=valid,
        ignore=torch.zeros_like(valid),
        scales=torch.ones(n),
        orig_sizes=torch.tensor([[size, size]] * n),
        image_ids=[str(i) for i in range(n)],
    )
