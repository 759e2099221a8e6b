"""Batch and assignment containers: tensors plus explicit masks, no behaviour.

Shapes (B images, G padded annotations, A priors, C classes):
    images       (B, 3, H, W) uint8 BGR pixel values, 0 in the padding (the model normalises)
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


@dataclass
class Detections:
    """Detections of one image in original-image pixels: boxes (N, 4) xyxy, scores, labels (N,)."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor


@dataclass
class Priors:
    """Where a dense head predicts, flattened over levels in the order of its outputs.

    boxes        (A, 4) float32 xyxy in network-input pixels: anchors, or for a head that
                 predicts from points the stride-sized square centred on each point
    strides      (A,) float32 stride of each prior's pyramid level
    level_sizes  priors per pyramid level, summing to A
    """

    boxes: torch.Tensor
    strides: torch.Tensor
    level_sizes: list[int]


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
    density         (B, A, 1) the crowd density around each prior
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
