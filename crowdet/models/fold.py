"""A convolution followed by a fixed BatchNorm, run as one convolution.

A BatchNorm whose statistics and affine terms do not change in the step (torchvision.ops
.FrozenBatchNorm2d, or nn.BatchNorm2d in eval mode) turns conv(x) into (conv(x) - mean) * s + beta
with s = gamma / sqrt(var + eps) per output channel: the same as one convolution with weight
W * s and bias beta + (b - mean) * s. `conv_norm` computes that weight in the forward pass, a
product the size of the weight in place of a normalisation pass over the activation (forward and
backward); gradients reach W, gamma and beta through it. Modules and state dicts stay as they are,
so checkpoints load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d


def is_fixed(norm: nn.Module) -> bool:
    """True when `norm` is an affine map this step: frozen, or a BatchNorm in eval mode that
    uses its running statistics."""
    if isinstance(norm, FrozenBatchNorm2d):
        return True
    return isinstance(norm, nn.BatchNorm2d) and not norm.training and norm.running_var is not None


def folded(conv: nn.Conv2d, norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight (O, I/groups, kh, kw) and bias (O,) of one convolution equal to conv then the
    fixed `norm` (is_fixed)."""
    scale = torch.rsqrt(norm.running_var + norm.eps)
    if norm.weight is not None:
        scale = norm.weight * scale
    bias = -norm.running_mean * scale
    if norm.bias is not None:
        bias = bias + norm.bias
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    return conv.weight * scale.reshape(-1, 1, 1, 1), bias


def conv_norm(x: torch.Tensor, conv: nn.Conv2d, norm: nn.Module) -> torch.Tensor:
    """norm(conv(x)); one convolution with the folded weight when the norm is fixed."""
    if not is_fixed(norm):
        return norm(conv(x))
    weight, bias = folded(conv, norm)
    return conv._conv_forward(x, weight, bias)
