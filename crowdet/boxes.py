"""Box operations on float xyxy tensors of shape (..., 4). Pure functions, no state.

Zero-area boxes are safe everywhere: IoU and IoA carry an epsilon so they never give NaN
(torchvision.ops.box_iou returns NaN for two zero-area boxes).
"""

from __future__ import annotations

import math

import torch

EPS = 1e-6
# Largest log-scale a decoded box may have, as in torchvision's BoxCoder (log(1000/16)).
MAX_LOG_SCALE = math.log(1000.0 / 16)


def area(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) -> (...) area, 0 for degenerate boxes."""
    wh = (boxes[..., 2:] - boxes[..., :2]).clamp(min=0)
    return wh[..., 0] * wh[..., 1]


def intersection(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise intersection areas: a (..., N, 4), b (..., M, 4) -> (..., N, M)."""
    lt = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    rb = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    return wh[..., 0] * wh[..., 1]


def iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU: a (..., N, 4), b (..., M, 4) -> (..., N, M) in [0, 1]."""
    inter = intersection(a, b)
    union = area(a)[..., :, None] + area(b)[..., None, :] - inter
    return inter / (union + EPS)


def ioa(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise intersection over the area of `a`: (..., N, 4), (..., M, 4) -> (..., N, M)."""
    return intersection(a, b) / (area(a)[..., :, None] + EPS)


def xywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    return torch.cat([boxes[..., :2], boxes[..., :2] + boxes[..., 2:]], dim=-1)


def xyxy_to_xywh(boxes: torch.Tensor) -> torch.Tensor:
    return torch.cat([boxes[..., :2], boxes[..., 2:] - boxes[..., :2]], dim=-1)


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    return torch.cat([(boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]], -1)


def clip(boxes: torch.Tensor, height: float, width: float) -> torch.Tensor:
    """Clip xyxy boxes to [0, width] x [0, height]."""
    x = boxes[..., 0::2].clamp(0, width)
    y = boxes[..., 1::2].clamp(0, height)
    return torch.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], dim=-1)


def encode(priors: torch.Tensor, boxes: torch.Tensor, weights=(1.0, 1.0, 1.0, 1.0)) -> torch.Tensor:
    """Regression targets (dx, dy, dw, dh) of `boxes` relative to `priors`, both (..., 4) xyxy."""
    pc, bc = xyxy_to_cxcywh(priors), xyxy_to_cxcywh(boxes)
    pwh = pc[..., 2:].clamp(min=EPS)
    dxy = (bc[..., :2] - pc[..., :2]) / pwh
    dwh = torch.log(bc[..., 2:].clamp(min=EPS) / pwh)
    w = torch.as_tensor(weights, dtype=boxes.dtype, device=boxes.device)
    return torch.cat([dxy, dwh], dim=-1) * w


def decode(
    priors: torch.Tensor, deltas: torch.Tensor, weights=(1.0, 1.0, 1.0, 1.0)
) -> torch.Tensor:
    """Inverse of `encode`: priors (..., 4) xyxy and deltas (..., 4) -> boxes (..., 4) xyxy."""
    w = torch.as_tensor(weights, dtype=deltas.dtype, device=deltas.device)
    d = deltas / w
    pc = xyxy_to_cxcywh(priors)
    cxy = pc[..., :2] + d[..., :2] * pc[..., 2:]
    wh = pc[..., 2:] * torch.exp(d[..., 2:].clamp(max=MAX_LOG_SCALE))
    return torch.cat([cxy - wh / 2, cxy + wh / 2], dim=-1)
