"""An exponential moving average of a model's weights, evaluated instead of the raw weights.

After update n (1-based) every floating-point entry of the state dict (parameters and BatchNorm
running statistics) becomes `ema = d_n * ema + (1 - d_n) * current` with the ramped decay
`d_n = min(decay, (1 + n) / (10 + n))`, so early averages are not dominated by the random
initialisation; integer buffers (BatchNorm's step counter) are copied.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_decay(decay: float, updates: int) -> float:
    """Decay used by update number `updates` (1-based)."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


class ModelEMA:
    def __init__(self, model: nn.Module, decay: float = 0.9998):
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards `model` (same architecture, unwrapped from DDP)."""
        self.updates += 1
        d = ema_decay(self.decay, self.updates)
        src = model.state_dict()
        floats_avg, floats_new = [], []
        for name, avg in self.module.state_dict().items():
            new = src[name].detach()
            if avg.is_floating_point():
                floats_avg.append(avg)
                floats_new.append(new.to(avg.dtype))
            else:
                avg.copy_(new)
        if floats_avg:
            torch._foreach_lerp_(floats_avg, floats_new, 1.0 - d)

    def state_dict(self) -> dict:
        """The averaged weights: a plain detector state dict (loadable by build_detector)."""
        return self.module.state_dict()

    def load_state_dict(self, weights: dict, updates: int) -> None:
        self.module.load_state_dict(weights)
        self.updates = updates
