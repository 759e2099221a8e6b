"""The model's input normalisation: BGR pixel values in, the network's input out.

Images stay BGR pixel values (uint8, or float) up to the model; `InputNorm` holds the mean and
std as buffers (not saved in checkpoints: the values are the config's model.pixel_mean /
pixel_std) and gives `(x - mean) / std` per channel, reordered to RGB for a backbone that expects
it, with the padding right and below each image set to 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from crowdet.config import PIXEL_MEAN_BGR, PIXEL_STD_BGR


def inside_images(image_sizes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """image_sizes (B, 2) (h, w) -> (B, 1, height, width) bool, True inside each image (the
    top-left h x w of the padded batch)."""
    sizes = image_sizes[:, :, None, None]
    rows = torch.arange(height, device=image_sizes.device)[None, :, None]
    cols = torch.arange(width, device=image_sizes.device)[None, None, :]
    return ((rows < sizes[:, 0]) & (cols < sizes[:, 1]))[:, None]


class InputNorm(nn.Module):
    def __init__(
        self,
        mean: Sequence[float] = PIXEL_MEAN_BGR,
        std: Sequence[float] = PIXEL_STD_BGR,
        rgb: bool = False,
    ):
        """mean, std: per channel of the BGR input; rgb: hand the network RGB channels."""
        super().__init__()
        self.register_buffer(
            "mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )
        self.rgb = rgb

    def forward(
        self, images: torch.Tensor, image_sizes: torch.Tensor | None = None
    ) -> torch.Tensor:
        """images (B, 3, H, W) BGR pixel values, image_sizes (B, 2) (h, w) of each image in the
        padded batch (None: no padding) -> (B, 3, H, W) float32, 0 in the padding."""
        x = (images.float() - self.mean) / self.std
        if self.rgb:
            x = x.flip(1)
        if image_sizes is None:
            return x
        inside = inside_images(image_sizes.to(x.device), *x.shape[-2:])
        return torch.where(inside, x, 0.0)
