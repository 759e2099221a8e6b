"""Batch and assignment containers: tensors plus explicit masks, no behaviour.

Shapes (B images, G padded annotations, A priors, C classes):
    images       (B, 3, H, W) float32, normalised
    image_sizes  (B, 2) int64 (height, width) of each image inside the padded batch
    boxes        (B, G, 4) float32 xyxy in network-input pixels
    valid        (B, G) bool  True for a real annotation (person or ignore region)
    ignore       (B, G) bool  True for an ignore region
    scales       (B,) float32 network-input pixels per original-image pixel
    orig_sizes   (B, 2) int64 (height, width) of the original images
Validity is never inferred from zeros; there is no cap on annotations per image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch


@dataclass
class Batch:
    images: torch.Tensor
    image_sizes: torch.Tensor
    boxes: torch.Tensor
    valid: torch.Tensor
    ignore: torch.Tensor
    scales: torch.Tensor
    orig_sizes: torch.Tensor
    image_ids: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # problem kind -> samples dropped
    # (image ID, problem kind, message naming the file) of each sample dropped
    skipped_images: list[tuple[str, str, str]] = field(default_factory=list)

    def to(self, device: torch.device | str) -> Batch:
        move = {k: getattr(self, k).to(device, non_blocking=True) for k in _TENSORS}
        return Batch(
            **move,
            image_ids=self.image_ids,
            skipped=self.skipped,
            skipped_images=self.skipped_images,
        )

    @property
    def num_images(self) -> int:
        return len(self.images)

    @property
    def people(self) -> torch.Tensor:
        """(B, G) bool: real, non-ignore annotations."""
        return self.valid & ~self.ignore


_TENSORS = ("images", "image_sizes", "boxes", "valid", "ignore", "scales", "orig_sizes")


# ---- the assigner contract (Assigner below): Priors, Targets and optionally Predictions in,
# an AssignResult out, with the codes of crowdet.assign.codes.


@dataclass
class Priors:
    """The priors of every image, level after level (the order of the flattened head outputs).

    boxes (A, 4) float xyxy in network-input pixels; level_sizes: priors per pyramid level,
    summing to A; strides: the level strides in pixels (None where the caller does not know them).
    """

    boxes: torch.Tensor
    level_sizes: list[int]
    strides: list[int] | None = None


@dataclass
class Targets:
    """What an assigner matches priors to, padded to G per image.

    boxes (B, G, 4) float xyxy; valid (B, G) bool, a real target (a person or an ignore region);
    ignore (B, G) bool, an ignore region; visible (B, G, 4) the visible boxes, None when absent.
    """

    boxes: torch.Tensor
    valid: torch.Tensor
    ignore: torch.Tensor
    visible: torch.Tensor | None = None


@dataclass
class Predictions:
    """The current predictions, detached, for dynamic assigners (SimOTA, OTA).

    scores (B, A, C) class probabilities in [0, 1]; boxes (B, A, 4) decoded xyxy boxes.
    """

    scores: torch.Tensor
    boxes: torch.Tensor


@dataclass
class AssignResult:
    """matched (B, A) int64: the index g of each prior's person, BACKGROUND (-1) or IGNORE (-2).

    soft_targets (B, A) float: a score target per prior other than 1 for positives (e.g. the
    IoU of its prediction), None for none; weights (B, A) float: a loss weight per prior, None
    for all ones.
    """

    matched: torch.Tensor
    soft_targets: torch.Tensor | None = None
    weights: torch.Tensor | None = None


class Assigner(Protocol):
    """What the loss calls: every assigner of crowdet.models.build.ASSIGNERS is one.

    uses_predictions: True when the assigner ranks priors by the current predictions (SimOTA,
    OTA); the loss then passes them, detached. Otherwise predictions is None.
    """

    uses_predictions: bool

    def __call__(
        self, priors: Priors, targets: Targets, predictions: Predictions | None = None
    ) -> AssignResult: ...


@dataclass
class Detections:
    """Detections of one image in original-image pixels: boxes (N, 4) xyxy, scores, labels (N,)."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
