"""Batch and assignment containers: tensors plus explicit masks, no behaviour.

Shapes (B images, G padded annotations, A priors, C classes):
    images       (B, 3, H, W) uint8 BGR pixel values, 0 in the padding (the model normalises)
    image_sizes  (B, 2) int64 (height, width) of each image inside the padded batch
    boxes        (B, G, 4) float32 xyxy in network-input pixels
    valid        (B, G) bool  True for a real annotation (person or ignore region)
    ignore       (B, G) bool  True for an ignore region
    scales       (B,) float32 network-input pixels per original-image pixel
    orig_sizes   (B, 2) int64 (height, width) of the original images
    visible      (B, G, 4) float32 xyxy the visible box of each annotation's person, row-aligned
                 with boxes (0 where there is none); None when the batch carries none
    visible_valid (B, G) bool True where visible holds a usable (finite, non-empty) box
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
    visible: torch.Tensor | None = None
    visible_valid: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> Batch:
        move = {k: getattr(self, k).to(device, non_blocking=True) for k in _TENSORS}
        for k in _OPTIONAL:
            value = getattr(self, k)
            move[k] = None if value is None else value.to(device, non_blocking=True)
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
_OPTIONAL = ("visible", "visible_valid")


# ---- the assigner contract (Assigner below): Priors, Targets and optionally Predictions in,
# an AssignResult out, with the codes of crowdet.assign.codes.


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
    """Detections of one image in original-image pixels: boxes (N, 4) xyxy, scores, labels (N,);
    visible (N, 4) xyxy the visible box of each, from a head that predicts one (else None)."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    visible: torch.Tensor | None = None


@dataclass
class Priors:
    """Where a dense head predicts, flattened over levels in the order of its outputs.

    boxes        (A, 4) float32 xyxy in network-input pixels: anchors, or for a head that
                 predicts from points the stride-sized square centred on each point
    level_sizes  priors per pyramid level, summing to A
    strides      (A,) float32 stride of each prior's pyramid level (None where not known)
    """

    boxes: torch.Tensor
    level_sizes: list[int]
    strides: torch.Tensor | None = None


@dataclass
class HeadOutput:
    """What a dense head predicts for its A priors (B images, C classes); an extra a head does not
    predict is None.

    cls_logits      (B, A, C) class logits
    box_regression  (B, A, 4) the box against its prior, in the head's box coder's encoding
    objectness      (B, A, 1) logits that a prior holds an object (YOLO-style heads)
    centerness      (B, A, 1) logits of how central a point prior lies in its box (FCOS)
    iou_quality     (B, A, 1) logits of the IoU of the predicted box with its target
    second_box      (B, A, 4) a second box (e.g. the visible box) in the same encoding
    density         (B, A, 1) logits of the crowd density of each prior's person (its largest
                    IoU with another person; crowdet.losses.density)
    """

    cls_logits: torch.Tensor
    box_regression: torch.Tensor
    objectness: torch.Tensor | None = None
    centerness: torch.Tensor | None = None
    iou_quality: torch.Tensor | None = None
    second_box: torch.Tensor | None = None
    density: torch.Tensor | None = None

    def float(self) -> HeadOutput:
        """Every output in float32 (outputs of a mixed-precision forward)."""
        return HeadOutput(**{k: None if v is None else v.float() for k, v in vars(self).items()})
