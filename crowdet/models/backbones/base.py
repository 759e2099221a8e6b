"""What the backbones share: freezing the first stages and keeping normalisation in eval mode.

A backbone is an nn.Module whose `forward(images)` gives [C3, C4, C5] (strides 8, 16, 32) and
that documents `out_channels` and `out_strides`. `input_rgb` says which channel order it expects
(torchvision's and Darknet's ImageNet weights were trained on RGB; crowdet's images are BGR, so
the detector's input normalisation reorders them when it is True).
"""

from __future__ import annotations

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class Backbone(nn.Module):
    out_channels: list[int]
    out_strides: list[int] = [8, 16, 32]
    input_rgb: bool = False

    def freeze(self, stages: list[nn.Module], frozen_stages: int, norm_eval: bool) -> None:
        """Stop training the first `frozen_stages` of `stages` (stem first): their parameters
        get requires_grad False and their BatchNorm statistics stop updating. With `norm_eval`
        every BatchNorm of the backbone keeps its running statistics (eval mode) in training."""
        if frozen_stages > len(stages):
            from crowdet.config_base import FieldError

            raise FieldError(
                "frozen_stages", f"must be at most {len(stages)} (the stem and the stages)"
            )
        self._frozen = list(stages[:frozen_stages])  # a plain list: not registered again
        for module in self._frozen:
            module.requires_grad_(False)
        self.norm_eval = norm_eval
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            for module in getattr(self, "_frozen", []):
                module.eval()
            if getattr(self, "norm_eval", False):
                for m in self.modules():
                    if isinstance(m, _BatchNorm):
                        m.eval()
        return self
