"""OTA: the sparse Sinkhorn against a dense one, the assigner against a per-image reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_max_iou import reference_rounds

from crowdet import boxes as box_ops
from crowdet.assign.codes import BACKGROUND, IGNORE
from crowdet.assign.common import match_quality
from crowdet.assign.ota import OTAAssigner, sinkhorn
from crowdet.config import OTAAssignConfig
from crowdet.errors import ConfigError
from crowdet.models.anchors import AnchorGenerator, point_priors
from crowdet.models.coders import DeltaCoder
from crowdet.structures import Predictions, Priors, Targets

DEFAULTS = OTAAssignConfig().model_dump(exclude={"name"})
PROPERTY = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STRIDES = [8, 16]
SIZE = (48, 64)


def priors_of(points: bool, dtype=torch.float64) -> Priors:
    gen = point_priors(STRIDES) if points else AnchorGenerator(STRIDES, 3.0, [1.0, 1.5], [2.0])
    p = gen([(SIZE[0] // s, SIZE[1] // s) for s in STRIDES])
    return Priors(p.boxes.to(dtype), p.level_sizes, p.strides)


def scene(seed: int, num_images: int, num_gt: int, num_priors: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(num_images, num_gt, 2, generator=g, dtype=dtype) * torch.tensor([64.0, 48.0])
    wh = torch.rand(num_images, num_gt, 2, generator=g, dtype=dtype) * torch.tensor([14.0, 30.0])
    boxes = torch.cat([xy - wh / 2 - 2, xy + wh / 2 + 2], -1)
    valid = torch.rand(num_images, num_gt, generator=g) < 0.9
    ignore = torch.rand(num_images, num_gt, generator=g) < 0.15
    scores = torch.rand(num_images, num_priors, 1, generator=g, dtype=dtype) * 0.9 + 0.05
    deltas = torch.randn(num_images, num_priors, 4, generator=g, dtype=dtype) * 0.2
    return Targets(boxes, valid, ignore), scores, deltas


# ----------------------------------------------------------------------------- Sinkhorn


def dense_sinkhorn(cost: np.ndarray, a: np.ndarray, b: np.ndarray, eps: float, iters: int):
    """Plain log-space Sinkhorn on a dense (S, D) cost (inf: no edge), float64."""
    f, g = np.zeros(len(a)), np.zeros(len(b))
    for _ in range(iters):
        for s in range(len(a)):
            terms = [(g[d] - cost[s, d]) / eps for d in range(len(b)) if np.isfinite(cost[s, d])]
            f[s] = eps * (math.log(a[s]) - np.logaddexp.reduce(terms))
        for d in range(len(b)):
            terms = [(f[s] - cost[s, d]) / eps for s in range(len(a)) if np.isfinite(cost[s, d])]
            g[d] = eps * (math.log(b[d]) - np.logaddexp.reduce(terms))
    return np.exp((f[:, None] + g[None, :] - cost) / eps)


def test_sparse_sinkhorn_equals_dense_and_keeps_its_marginals():
    rng = np.random.default_rng(0)
    num_s, num_d = 4, 12
    cost = rng.uniform(0, 3, (num_s, num_d))
    cost[:3][rng.random((3, num_d)) < 0.5] = np.inf  # people reach some priors; background all
    supply = np.array([2.0, 1.0, 3.0, num_d - 6.0])
    demand = np.ones(num_d)
    s, d = np.nonzero(np.isfinite(cost))
    plan = sinkhorn(
        torch.tensor(s), torch.tensor(d), torch.tensor(cost[s, d]), torch.tensor(supply),
        torch.tensor(demand), eps=0.1, iters=300,
    )  # fmt: skip
    expected = dense_sinkhorn(cost, supply, demand, eps=0.1, iters=300)
    assert np.allclose(plan.numpy(), expected[s, d], atol=1e-9)
    rows = np.bincount(s, weights=plan.numpy(), minlength=num_s)
    cols = np.bincount(d, weights=plan.numpy(), minlength=num_d)
    assert np.allclose(rows, supply, atol=1e-4) and np.allclose(cols, demand, atol=1e-10)


# ----------------------------------------------------------------------------- reference


def reference_ota(priors: Priors, targets: Targets, scores, boxes, cfg: dict) -> torch.Tensor:
    """Per image, per person, per prior: the rules of crowdet.assign.ota in plain loops."""
    pb = priors.boxes
    centres = ((pb[:, :2] + pb[:, 2:]) / 2).tolist()
    levels, start = [], 0
    for size in priors.level_sizes:
        levels.append(range(start, start + size))
        start += size
    num_images, num_gt = targets.valid.shape
    out = torch.full((num_images, len(pb)), BACKGROUND, dtype=torch.long)
    for b in range(num_images):
        gt = targets.boxes[b]
        people = [g for g in range(num_gt) if targets.valid[b, g] and not targets.ignore[b, g]]
        people = [g for g in people if box_ops.area(gt[g]) > 0]
        regions = [g for g in range(num_gt) if targets.valid[b, g] and targets.ignore[b, g]]
        row = _reference_plan(pb, centres, levels, gt, people, scores[b, :, 0], boxes[b], cfg)
        ioa = box_ops.ioa(pb, gt).tolist()
        for a in range(len(pb)):
            if row[a] < 0 and any(ioa[a][g] > cfg["ignore_ioa"] for g in regions):
                row[a] = IGNORE
        iou = box_ops.iou(gt, pb).tolist()
        reference_rounds(row, people, iou, match_quality(gt[None], pb)[0].tolist())
        out[b] = torch.tensor(row)
    return out


def _reference_plan(pb, centres, levels, gt, people, score, pred, cfg):
    """One image: candidates, costs, supplies, dense Sinkhorn, then each prior's supplier."""
    cost, iou_of = {}, {}
    for g in people:
        x1, y1, x2, y2 = gt[g].tolist()
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        for level in levels:
            near = sorted(
                level, key=lambda a: (centres[a][0] - cx) ** 2 + (centres[a][1] - cy) ** 2
            )
            for a in near[: cfg["candidates"]]:
                iou = float(box_ops.iou(pred[a][None], gt[g][None])[0, 0])
                px, py = centres[a]
                inside = min(px - x1, py - y1, x2 - px, y2 - py) > box_ops.EPS
                w, h = (pb[a, 2] - pb[a, 0]).item(), (pb[a, 3] - pb[a, 1]).item()
                cost[g, a] = (
                    cfg["cls_weight"] * -math.log(max(score[a].item(), 1e-8))
                    + cfg["iou_weight"] * -math.log(max(iou, 1e-8))
                    + cfg["center_weight"] * math.hypot(px - cx, py - cy) / math.sqrt(w * h)
                    + cfg["outside_cost"] * (not inside)
                )
                iou_of[g, a] = iou
    cands = sorted({a for _, a in cost})
    row = [BACKGROUND] * len(pb)
    if not people:
        return row
    k = []
    for g in people:
        best = sorted((v for (h, _), v in iou_of.items() if h == g), reverse=True)
        k.append(max(1.0, math.floor(sum(best[: cfg["dynamic_q"]]))))
    scale = min(1.0, len(cands) / sum(k))
    k = [v * scale for v in k]
    matrix = np.full((len(people) + 1, len(cands)), np.inf)
    for i, g in enumerate(people):
        for j, a in enumerate(cands):
            matrix[i, j] = cost.get((g, a), np.inf)
    matrix[-1] = [cfg["cls_weight"] * -math.log(max(1 - score[a].item(), 1e-8)) for a in cands]
    supply = np.array([*k, max(len(cands) - sum(k), 1e-8)])
    plan = dense_sinkhorn(matrix, supply, np.ones(len(cands)), cfg["eps"], cfg["iters"])
    for j, a in enumerate(cands):
        i = int(np.argmax(np.nan_to_num(plan[:, j], nan=-1.0)))
        row[a] = people[i] if i < len(people) else BACKGROUND
    return row


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("points", [False, True])
def test_matches_per_image_reference(seed, points):
    priors = priors_of(points)
    targets, scores, deltas = scene(seed, 2, 5, len(priors.boxes))
    boxes = DeltaCoder().decode(priors.boxes, deltas)
    cfg = {**DEFAULTS, "candidates": 6, "iters": 30}
    got = OTAAssigner(**cfg)(priors, targets, Predictions(scores, boxes)).matched
    expected = reference_ota(priors, targets, scores, boxes, cfg)
    assert torch.equal(got, expected)


# ----------------------------------------------------------------------------- properties


@PROPERTY
@given(st.integers(0, 2**31 - 1), st.integers(0, 12), st.booleans())
def test_every_person_has_a_positive_and_ignore_is_respected(seed, num_gt, points):
    priors = priors_of(points, torch.float32)
    targets, scores, deltas = scene(seed, 2, num_gt, len(priors.boxes), torch.float32)
    boxes = DeltaCoder().decode(priors.boxes, deltas)
    assigner = OTAAssigner(**DEFAULTS)
    matched = assigner(priors, targets, Predictions(scores, boxes)).matched
    people = targets.valid & ~targets.ignore & (box_ops.area(targets.boxes) > 0)
    regions = targets.valid & targets.ignore
    for b in range(2):
        got = set(matched[b][matched[b] >= 0].tolist())
        assert got == set(people[b].nonzero().flatten().tolist())
        ioa = box_ops.ioa(priors.boxes, targets.boxes[b])[:, regions[b]]  # (A, R)
        covered = (
            (ioa > DEFAULTS["ignore_ioa"]).any(1)
            if ioa.shape[1]
            else ioa.new_zeros(len(ioa)).bool()
        )
        assert torch.equal(
            matched[b] == IGNORE, covered & (matched[b] < 0) | (matched[b] == IGNORE)
        )
        assert not bool(((matched[b] == BACKGROUND) & covered).any())


def test_predictions_are_required_and_bad_settings_are_named():
    priors = priors_of(True, torch.float32)
    targets, _, _ = scene(0, 1, 2, len(priors.boxes), torch.float32)
    with pytest.raises(ValueError, match="ranks priors by the predictions"):
        OTAAssigner(**DEFAULTS)(priors, targets)
    with pytest.raises(ConfigError, match="eps > 0"):
        OTAAssigner(**{**DEFAULTS, "eps": 0.0})
    assert OTAAssigner.uses_predictions
