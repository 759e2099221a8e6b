"""A one-stage dense detector: backbone -> neck -> head, priors from an anchor generator.

`forward(images)` returns raw head outputs; `loss(batch)` and `predict(batch)` wrap the loss and
post-processing so the trainer, the evaluator and `crowdet detect` share one path.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from crowdet.models.anchors import AnchorGenerator
from crowdet.models.preprocess import InputNorm
from crowdet.postprocess.decode import PassOutput, mirror_images, resize_images
from crowdet.structures import Batch, Detections


class DenseDetector(nn.Module):
    def __init__(
        self,
        backbone: nn.Module,
        neck: nn.Module,
        head: nn.Module,
        anchors: AnchorGenerator,
        loss: Callable | None = None,
        postprocess: Callable | None = None,
        channels_last: bool = False,
        flip_test: bool = False,
        test_scales: tuple[float, ...] = (1.0,),
        size_divisor: int = 32,
        input_norm: nn.Module | None = None,
    ):
        super().__init__()
        self.backbone, self.neck, self.head = backbone, neck, head
        self.anchors = anchors
        self.loss_fn, self.postprocess_fn = loss, postprocess
        self.channels_last = channels_last  # images are made NHWC on the way in
        # test-time augmentation: predict on the images resized by each of test_scales, each
        # also mirrored with flip_test; resized inputs are padded to a multiple of size_divisor
        self.flip_test, self.test_scales = flip_test, tuple(test_scales)
        self.size_divisor = size_divisor
        # batch images are BGR pixel values: loss and predict normalise them first (forward's
        # input is normalised)
        self.input_norm = input_norm if input_norm is not None else InputNorm()

    def forward(self, images: torch.Tensor):
        """images (B, 3, H, W) normalised (`input_norm`) -> cls_logits (B, A, C), box_deltas
        (B, A, 4), priors (A, 4)."""
        return self._outputs(images)[:3]

    def _outputs(self, images: torch.Tensor):
        """forward's outputs and the feature map shapes [(H_l, W_l)]."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        feats = self.neck(self.backbone(images))
        cls_logits, box_deltas = self.head(feats)
        shapes = [tuple(f.shape[-2:]) for f in feats]
        return cls_logits, box_deltas, self.anchors(shapes, device=images.device), shapes

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = self.input_norm(batch.images, batch.image_sizes)
        cls_logits, box_deltas, priors, shapes = self._outputs(x)
        level_sizes = self.anchors.level_sizes(shapes)
        return self.loss_fn(cls_logits.float(), box_deltas.float(), priors, batch, level_sizes)

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[Detections]:
        """Detections per image; with test-time augmentation (test_scales, flip_test) every pass's
        candidates join before NMS."""
        passes = []
        normed = self.input_norm(batch.images, batch.image_sizes)  # test-time ops run on it
        for scale in self.test_scales:
            images, sizes, resize = resize_images(
                normed, batch.image_sizes, scale, self.size_divisor
            )
            for mirrored in (False, True) if self.flip_test else (False,):
                x = mirror_images(images, sizes) if mirrored else images
                cls_logits, box_deltas, priors = self(x)
                passes.append(
                    PassOutput(
                        cls_logits.float(), box_deltas.float(), priors, sizes, resize, mirrored
                    )
                )
        return self.postprocess_fn(passes, batch.scales)
