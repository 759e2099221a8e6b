"""FreeAnchor: the batched loss against a per-image reference written from the paper's formula."""

from __future__ import annotations

import math

import pytest
import torch

from crowdet import boxes as box_ops
from crowdet.config import FreeAnchorAssignConfig, load_config
from crowdet.losses.free_anchor import FreeAnchorLoss, anchor_bags, mean_max, saturated_match
from crowdet.models.anchors import AnchorGenerator
from crowdet.models.build import build_loss
from crowdet.models.coders import DeltaCoder
from crowdet.structures import Batch, HeadOutput, Priors

DEFAULTS = FreeAnchorAssignConfig().model_dump(exclude={"name"})
TINY = "configs/tiny.yaml"


def priors_of(dtype=torch.float64) -> Priors:
    p = AnchorGenerator([8, 16], 3.0, [1.0, 1.5], [2.0])([(6, 8), (3, 4)])
    return Priors(p.boxes.to(dtype), p.level_sizes, p.strides)


def batch_of(seed: int, num_gt: int, dtype=torch.float64) -> Batch:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(2, num_gt, 2, generator=g, dtype=dtype) * torch.tensor([64.0, 48.0])
    wh = torch.rand(2, num_gt, 2, generator=g, dtype=dtype) * torch.tensor([14.0, 30.0]) + 3
    boxes = torch.cat([xy - wh / 2, xy + wh / 2], -1)
    valid = torch.rand(2, num_gt, generator=g) < 0.9
    ignore = torch.rand(2, num_gt, generator=g) < 0.2
    sizes = torch.tensor([[48, 64]] * 2)
    return Batch(torch.zeros(2, 3, 48, 64), sizes, boxes, valid, ignore, torch.ones(2), sizes)


def free_anchor_loss(cfg: dict) -> FreeAnchorLoss:
    """The loss of a FreeAnchorAssignConfig dump, built as crowdet.models.build builds it."""
    kwargs = {k: v for k, v in cfg.items() if k != "delta_weights"}
    return FreeAnchorLoss(**kwargs, delta_coder=DeltaCoder(cfg["delta_weights"]))


def reference(logits, deltas, priors: Priors, batch: Batch, cfg: dict) -> float:
    """Per image and per person, the formula of Zhang et al. (positive and negative terms); the
    box likelihood on deltas with FreeAnchor's weights (cfg["delta_weights"]), those of the
    predicted box against those of the person."""
    coder, pb = DeltaCoder(), priors.boxes
    paper = DeltaCoder(cfg["delta_weights"])
    alpha, gamma, beta, w = (
        cfg["focal_alpha"],
        cfg["focal_gamma"],
        cfg["smooth_l1_beta"],
        cfg["box_weight"],
    )
    positive, negative, count = 0.0, 0.0, 0
    for b in range(len(logits)):
        people = [
            g for g in range(batch.boxes.shape[1]) if batch.valid[b, g] and not batch.ignore[b, g]
        ]
        regions = [
            g for g in range(batch.boxes.shape[1]) if batch.valid[b, g] and batch.ignore[b, g]
        ]
        count += len(people)
        score = [1 / (1 + math.exp(-v)) for v in logits[b, :, 0].tolist()]
        pred = coder.decode(pb, deltas[b])
        match = [0.0] * len(pb)
        for g in people:
            gt = batch.boxes[b, g]
            iou = box_ops.iou(gt[None], pb)[0].tolist()
            bag = sorted(range(len(pb)), key=lambda a: (-iou[a], a))[: cfg["bag_size"]]
            probs = []
            for a in bag:
                target = paper.encode(pb[a], gt).tolist()
                predicted = paper.encode(pb[a], pred[a]).tolist()
                loss = sum(
                    abs(d - t) - beta / 2 if abs(d - t) >= beta else (d - t) ** 2 / (2 * beta)
                    for d, t in zip(predicted, target)
                )
                probs.append(score[a] * math.exp(-w * loss))
            weights = [1 / (1 - p) for p in probs]
            bag_p = sum(x * y for x, y in zip(weights, probs)) / sum(weights)
            positive += -alpha * math.log(bag_p)
            pred_iou = box_ops.iou(gt[None], pred)[0].tolist()
            top = max(max(pred_iou), cfg["iou_low"] + 1e-12)
            for a in range(len(pb)):
                p = min(max((pred_iou[a] - cfg["iou_low"]) / (top - cfg["iou_low"]), 0.0), 1.0)
                match[a] = max(match[a], p)
        ioa = box_ops.ioa(pb, batch.boxes[b]).tolist()
        for a in range(len(pb)):
            if any(ioa[a][g] > cfg["ignore_ioa"] for g in regions):
                continue
            p = min(max(score[a] * (1 - match[a]), 1e-6), 1 - 1e-6)
            negative += (1 - alpha) * p**gamma * -math.log(1 - p)
    return positive / max(count, 1) + negative / max(count * cfg["bag_size"], 1)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("bag_size", [3, 50])
def test_matches_the_per_image_formula(seed, bag_size):
    priors, batch = priors_of(), batch_of(seed, 4)
    g = torch.Generator().manual_seed(seed + 100)
    logits = torch.randn(2, len(priors.boxes), 1, generator=g, dtype=torch.float64)
    deltas = torch.randn(2, len(priors.boxes), 4, generator=g, dtype=torch.float64) * 0.3
    if seed == 0:  # some predictions match the people well: the saturated linear is not all 0
        deltas[:, :] = 0.0
    cfg = {**DEFAULTS, "bag_size": bag_size, "iou_low": 0.3 if seed % 2 else 0.6}
    loss = free_anchor_loss(cfg)
    out = loss(HeadOutput(logits, deltas), priors, batch, DeltaCoder())
    expected = reference(logits, deltas, priors, batch, cfg)
    assert sum(out.values()).item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_bags_from_windows_equal_bags_from_every_prior():
    p = AnchorGenerator([8, 16, 32], 4.0, [1.0, 1.26], [1.0, 2.44])([(12, 16), (6, 8), (3, 4)])
    batch = batch_of(3, 20, torch.float32)
    people = batch.valid & ~batch.ignore
    windowed = anchor_bags(p, p.boxes, batch.boxes, people, 50, 2**20)
    flat = Priors(p.boxes, [len(p.boxes)])  # one joined level: not a grid, every prior ranked
    dense = anchor_bags(flat, p.boxes, batch.boxes, people, 50, 2**20)
    assert torch.equal(windowed, dense)


def test_mean_max_hand_made():
    x = torch.tensor([[0.5, 0.5], [0.5, 0.75]])
    # weights 1/(1-x): (2, 2) and (2, 4): (1 + 1) / 4 and (1 + 3) / 6
    assert torch.allclose(mean_max(x), torch.tensor([0.5, 4 / 6]))


def test_selected_from_the_config_and_trains_the_whole_head():
    cfg = load_config(TINY, ["assign.name=freeanchor"])
    loss = build_loss(cfg)
    assert isinstance(loss, FreeAnchorLoss) and loss.bag_size == 50
    priors, batch = priors_of(torch.float32), batch_of(1, 6, torch.float32)
    logits = torch.zeros(2, len(priors.boxes), 1, requires_grad=True)
    deltas = torch.zeros(2, len(priors.boxes), 4, requires_grad=True)
    out = loss(HeadOutput(logits, deltas), priors, batch, DeltaCoder())
    sum(out.values()).backward()
    assert logits.grad.abs().sum() > 0 and deltas.grad.abs().sum() > 0
    empty = Batch(batch.images, batch.image_sizes, batch.boxes[:, :0], batch.valid[:, :0],
                  batch.ignore[:, :0], batch.scales, batch.orig_sizes)  # fmt: skip
    out = loss(HeadOutput(logits, deltas), priors, empty, DeltaCoder())
    assert all(torch.isfinite(v) for v in out.values()) and out["pos_bag"] == 0


@pytest.mark.parametrize("iou_low", [0.3, 0.6])
def test_saturated_match_from_cells_equals_every_pair(iou_low):
    g = torch.Generator().manual_seed(7)
    boxes = batch_of(5, 30, torch.float32).boxes
    people = torch.rand(2, 30, generator=g) < 0.8
    # predictions near the people (many above iou_low), some far outside the image
    src = boxes[:, torch.randint(0, 30, (400,), generator=g)]
    pred = src + torch.randn(2, 400, 4, generator=g) * 3
    pred[:, :20] += 500
    pred = torch.cat([pred[..., :2], torch.maximum(pred[..., 2:], pred[..., :2] + 0.5)], -1)
    got = saturated_match(pred, boxes, people, iou_low, max_elements=1000, cell=8.0)
    iou = box_ops.iou(boxes, pred)  # (B, G, A)
    top = iou.masked_fill(~people[..., None], 0).amax(2, keepdim=True).clamp(min=iou_low + 1e-12)
    p = ((iou - iou_low) / (top - iou_low)).clamp(0, 1).masked_fill(~people[..., None], 0)
    assert torch.equal(got, p.amax(1)) and (got > 0).sum() > 50


def test_bags_of_small_people_from_the_overlapping_anchors():
    """People too small to reach BAG_IOU with 50 anchors: their bags come from the overlaps."""
    p = AnchorGenerator([8, 16, 32], 4.0, [1.0, 1.26], [1.0, 2.44])([(12, 16), (6, 8), (3, 4)])
    boxes = torch.tensor([[[20.0, 20, 23, 27], [60, 30, 62, 34], [90, 10, 130, 90]]])
    people = torch.ones(1, 3, dtype=torch.bool)
    windowed = anchor_bags(p, p.boxes, boxes, people, 50, 2**20)
    dense = anchor_bags(Priors(p.boxes, [len(p.boxes)]), p.boxes, boxes, people, 50, 2**20)
    assert torch.equal(windowed, dense)


def test_box_likelihood_in_freeanchor_deltas():
    """With the head's unit-weight deltas, the paper's likelihood is measured on 10 / 10 / 5 / 5
    times them: an anchor whose regression is off by 0.1 in dx loses 10x more likelihood than
    unit weights would give (smooth L1 past beta: |10 * 0.1| - beta / 2 against 0.1^2 / 2 beta)."""
    priors = Priors(torch.tensor([[0.0, 0.0, 10.0, 20.0]], dtype=torch.float64), [1])
    boxes = torch.tensor([[[0.0, 0.0, 10.0, 20.0]]], dtype=torch.float64)
    sizes = torch.tensor([[20, 10]])
    one = torch.ones(1, 1, dtype=torch.bool)
    batch = Batch(torch.zeros(1, 3, 20, 10), sizes, boxes, one, ~one, torch.ones(1), sizes)
    logits = torch.full((1, 1, 1), 2.0, dtype=torch.float64)
    deltas = torch.tensor([[[0.1, 0.0, 0.0, 0.0]]], dtype=torch.float64)
    cfg = {**DEFAULTS, "bag_size": 1, "focal_alpha": 1.0}  # the positive term alone
    p_cls = 1 / (1 + math.exp(-2.0))
    for weights, sl1 in (((10.0, 10.0, 5.0, 5.0), 1.0 - 0.055), ((1.0,) * 4, 0.01 / 0.22)):
        loss = free_anchor_loss({**cfg, "delta_weights": weights})
        out = loss(HeadOutput(logits, deltas), priors, batch, DeltaCoder())
        expected = -math.log(p_cls * math.exp(-cfg["box_weight"] * sl1))
        assert out["pos_bag"].item() == pytest.approx(expected, rel=1e-9)
