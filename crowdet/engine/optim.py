"""Optimizer with no weight decay on norms and biases, and the warmup + cosine / step schedule."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from crowdet.config import TrainConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            is_norm = isinstance(
                module, nn.modules.batchnorm._NormBase | nn.GroupNorm | nn.LayerNorm
            )
            (no_decay if is_norm or name == "bias" else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def scaled_lr(cfg: TrainConfig, world: int = 1) -> float:
    """Peak learning rate for a total batch of batch_size * accumulate * world images:
    cfg.lr unchanged, or with lr_scale 'linear' cfg.lr * total / base_batch."""
    if cfg.lr_scale == "linear":
        return cfg.lr * cfg.batch_size * cfg.accumulate * world / cfg.base_batch
    return cfg.lr


def build_optimizer(
    model: nn.Module, cfg: TrainConfig, lr: float | None = None
) -> torch.optim.Optimizer:
    """SGD or AdamW over `param_groups`; `lr` (default cfg.lr) is the peak learning rate."""
    lr = cfg.lr if lr is None else lr
    groups = param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    return torch.optim.AdamW(groups, lr=lr, betas=(cfg.momentum, 0.999))


def lr_factor(step: int, cfg: TrainConfig, max_iters: int | None = None) -> float:
    """Multiplier of cfg.lr at optimizer step `step` (0-based) of a schedule of max_iters steps
    (default cfg.max_iters)."""
    max_iters = cfg.max_iters if max_iters is None else max_iters
    if step < cfg.warmup_iters:
        alpha = step / max(1, cfg.warmup_iters)
        warm = cfg.warmup_factor * (1 - alpha) + alpha
    else:
        warm = 1.0
    t = min(step / max(1, max_iters), 1.0)
    if cfg.schedule == "cosine":
        floor = cfg.min_lr_ratio
        main = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
    elif cfg.schedule == "step":
        main = 0.1 ** sum(t >= s for s in cfg.steps)
    else:
        main = 1.0
    return warm * main


def build_scheduler(
    optimizer, cfg: TrainConfig, horizon: Callable[[], int] | None = None
) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR of `lr_factor`; horizon() gives the schedule's length at each step (default
    cfg.max_iters; a time-budgeted run plans it as it goes)."""
    horizon = horizon or (lambda: cfg.max_iters)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, cfg, horizon())
    )
