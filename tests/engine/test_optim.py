"""Optimizer groups, the warmup + cosine / step schedule and the learning-rate scaling, against
their formulas."""

import math

import pytest
import torch
from torch import nn

from crowdet.config import TrainConfig
from crowdet.engine.optim import (
    build_optimizer,
    build_scheduler,
    lr_factor,
    param_groups,
    scaled_lr,
)


def test_no_weight_decay_on_norms_and_biases():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.GroupNorm(2, 4), nn.Linear(4, 2)
    )
    decay, no_decay = param_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    assert ids(decay["params"]) == {id(model[0].weight), id(model[3].weight)}
    assert len(no_decay["params"]) == 6  # 2 biases + BN and GN weight/bias


def test_warmup_then_cosine_follows_the_formula():
    cfg = TrainConfig(max_iters=100, warmup_iters=10, warmup_factor=0.1, min_lr_ratio=0.01)
    for step in (0, 5, 10, 50, 99, 100):
        alpha = step / 10
        warm = 0.1 * (1 - alpha) + alpha if step < 10 else 1.0
        cos = 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * step / 100))
        assert lr_factor(step, cfg) == pytest.approx(warm * cos)


def test_step_schedule_drops_tenfold_at_each_milestone():
    cfg = TrainConfig(max_iters=100, warmup_iters=0, schedule="step", steps=[0.5, 0.8])
    assert [lr_factor(s, cfg) for s in (0, 49, 50, 79, 80)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])


def test_scheduler_drives_the_optimizer_lr():
    cfg = TrainConfig(max_iters=20, warmup_iters=4, lr=0.5, optimizer="sgd")
    model = nn.Linear(2, 2)
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg)
    for step in range(1, 6):
        opt.step()
        sched.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * lr_factor(step, cfg))
    assert isinstance(opt, torch.optim.SGD)


def test_linear_lr_scaling_by_total_batch():
    cfg = TrainConfig(lr=0.01, batch_size=4, accumulate=2, base_batch=16, lr_scale="linear")
    assert scaled_lr(cfg, world=1) == pytest.approx(0.01 * 8 / 16)
    assert scaled_lr(cfg, world=4) == pytest.approx(0.01 * 32 / 16)
    assert scaled_lr(cfg.model_copy(update={"lr_scale": "none"}), world=4) == 0.01
    opt = build_optimizer(nn.Linear(2, 2), cfg, lr=scaled_lr(cfg, 4))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.02)
