"""Post-processing of detector outputs: hard NMS, Soft-NMS and Adaptive NMS."""

from crowdet.postprocess.nms import (
    adaptive_nms,
    batched_adaptive_nms,
    batched_nms,
    batched_soft_nms,
    nms,
    soft_nms,
)

__all__ = [
    "adaptive_nms",
    "batched_adaptive_nms",
    "batched_nms",
    "batched_soft_nms",
    "nms",
    "soft_nms",
]
