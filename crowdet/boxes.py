"""Box operations on float xyxy tensors of shape (..., 4). Pure functions, no state.

Overlaps come pairwise (`iou(a, b)`: every box of a with every box of b) or paired
(`paired_iou(a, b)`: a and b broadcast together, one value per pair of rows). Every IoU, GIoU
and IoA of the package is one of these (or a copy held equal to them by a test). Zero-area boxes
are safe everywhere: IoU, GIoU and IoA carry an epsilon so they never give NaN
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


def paired_intersection(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection areas of boxes a (..., 4) and b (..., 4), broadcast together -> (...)."""
    # In place on its own temporaries only (autograd allows it): a crowd's (B, G, A) block makes
    # fewer full-size temporaries. Measured side by side in one process on a demo-sized batch
    # (8 images of 40 people, 6,375 priors, one thread, 30 interleaved runs, best of each):
    # max-IoU assignment 67 ms with in-place steps in the kernel, 99 ms with out-of-place ones;
    # ATSS 66 ms and 74 ms. The values are the same.
    w = torch.minimum(a[..., 2], b[..., 2]).sub_(torch.maximum(a[..., 0], b[..., 0]))
    h = torch.minimum(a[..., 3], b[..., 3]).sub_(torch.maximum(a[..., 1], b[..., 1]))
    return w.clamp_(min=0).mul_(h.clamp_(min=0))


def paired_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of boxes a (..., 4) and b (..., 4), broadcast together -> (...) in [0, 1]."""
    a, b = _floating(a), _floating(b)
    inter = paired_intersection(a, b)
    union = (area(a) + area(b)).sub_(inter)
    return inter.div_(union.add_(EPS))


def paired_ioa(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over the area of `a`, for a (..., 4) and b (..., 4) broadcast -> (...)."""
    a, b = _floating(a), _floating(b)
    return paired_intersection(a, b).div_(area(a) + EPS)


def paired_giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Generalised IoU of a (..., 4) and b (..., 4), broadcast -> (...) in [-1, 1]: the IoU minus
    the share of the smallest enclosing box that the union leaves empty."""
    a, b = _floating(a), _floating(b)
    inter = paired_intersection(a, b)
    union = (area(a) + area(b)).sub_(inter)
    w = torch.maximum(a[..., 2], b[..., 2]).sub_(torch.minimum(a[..., 0], b[..., 0]))
    h = torch.maximum(a[..., 3], b[..., 3]).sub_(torch.minimum(a[..., 1], b[..., 1]))
    enclose = w.clamp_(min=0).mul_(h.clamp_(min=0))
    empty = (enclose - union).clamp_(min=0)  # of the enclosing box, the part outside the union
    return inter.div_(union.add_(EPS)).sub_(empty.div_(enclose.add_(EPS)))


def _floating(boxes: torch.Tensor) -> torch.Tensor:
    """Integer boxes as float32 (the ratios are computed in place); float boxes as they are."""
    return boxes if boxes.is_floating_point() else boxes.float()


def _pairwise(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """a (..., N, 4), b (..., M, 4) -> views (..., N, 1, 4) and (..., 1, M, 4)."""
    return a[..., :, None, :], b[..., None, :, :]


def intersection(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise intersection areas: a (..., N, 4), b (..., M, 4) -> (..., N, M)."""
    return paired_intersection(*_pairwise(a, b))


def iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU: a (..., N, 4), b (..., M, 4) -> (..., N, M) in [0, 1]."""
    return paired_iou(*_pairwise(a, b))


def ioa(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise intersection over the area of `a`: (..., N, 4), (..., M, 4) -> (..., N, M)."""
    return paired_ioa(*_pairwise(a, b))


def giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise generalised IoU: a (..., N, 4), b (..., M, 4) -> (..., N, M) in [-1, 1]."""
    return paired_giou(*_pairwise(a, b))


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
