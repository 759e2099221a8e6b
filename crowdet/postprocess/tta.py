"""Test-time augmentation: the image ops that make a pass's input from the batch's network input
(resized, mirrored) and the inverse that maps a pass's boxes back onto the network input.

A pass is the batch's network input resized by factors (fy, fx) (`resize_images`) and, when
mirrored, flipped left-right within each image's width (`mirror_images`); its boxes go back with
`boxes_to_input`. crowdet.models.detector.DenseDetector.predict runs the passes;
crowdet.postprocess.decode merges their candidates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_images(
    images: torch.Tensor, image_sizes: torch.Tensor, scale: float, size_divisor: int = 32
) -> tuple[torch.Tensor, torch.Tensor, tuple[float, float]]:
    """images (B, C, H, W) padded on the right and bottom, image_sizes (B, 2) (h, w) -> the batch
    resized by about `scale` (bilinear; antialiased when shrinking) and padded with zeros to a
    multiple of size_divisor, the new image sizes, and the exact factors (fy, fx) applied."""
    if scale == 1.0:
        return images, image_sizes, (1.0, 1.0)
    height, width = images.shape[-2:]
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    out = F.interpolate(
        images, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=scale < 1
    )
    out = F.pad(out, (0, -new_w % size_divisor, 0, -new_h % size_divisor))
    fy, fx = new_h / height, new_w / width
    sizes = (image_sizes * image_sizes.new_tensor([fy, fx], dtype=torch.float64)).round()
    return out, sizes.clamp(min=1).to(image_sizes.dtype), (fy, fx)


def mirror_images(images: torch.Tensor, image_sizes: torch.Tensor) -> torch.Tensor:
    """images (B, C, H, W) padded on the right and bottom, image_sizes (B, 2) (h, w) -> each image
    mirrored left-right within its own width, the padding left where it was."""
    width = images.shape[-1]
    cols = torch.arange(width, device=images.device)
    w = image_sizes[:, 1:2].to(cols.device)
    src = torch.where(cols < w, w - 1 - cols, cols)  # (B, W)
    index = src[:, None, None, :].expand_as(images)
    return torch.gather(images, 3, index)


def boxes_to_input(
    boxes: torch.Tensor, widths: torch.Tensor, resize: tuple[float, float], mirrored: bool
) -> torch.Tensor:
    """Boxes (N, 4) xyxy found on a pass's input, widths (N,) of their images in that input ->
    the boxes on the batch's network input: mirrored back within the width, then divided by the
    resize factors (fy, fx)."""
    if mirrored:
        width = widths.to(boxes.dtype)
        boxes = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1)
    if resize != (1.0, 1.0):
        fy, fx = resize
        boxes = boxes / boxes.new_tensor([fx, fy, fx, fy])
    return boxes
