"""A one-stage dense detector: backbone -> neck -> head, priors from an anchor generator.

`forward(images)` returns raw head outputs; `loss(batch)` and `predict(batch)` wrap the loss and
post-processing so the trainer, the evaluator and `crowdet detect` share one path.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from crowdet.models.anchors import AnchorGenerator
from crowdet.postprocess.decode import mirror_images
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
    ):
        super().__init__()
        self.backbone, self.neck, self.head = backbone, neck, head
        self.anchors = anchors
        self.loss_fn, self.postprocess_fn = loss, postprocess
        self.channels_last = channels_last  # images are made NHWC on the way in
        self.flip_test = flip_test  # predict also on the mirrored images (test-time augmentation)

    def forward(self, images: torch.Tensor):
        """images (B, 3, H, W) -> cls_logits (B, A, C), box_deltas (B, A, 4), priors (A, 4)."""
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
        cls_logits, box_deltas, priors, shapes = self._outputs(batch.images)
        level_sizes = self.anchors.level_sizes(shapes)
        return self.loss_fn(cls_logits.float(), box_deltas.float(), priors, batch, level_sizes)

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[Detections]:
        """Detections per image; with flip_test the mirrored images are run too and their
        candidates join the others before NMS."""
        cls_logits, box_deltas, priors = self(batch.images)
        mirrored = None
        if self.flip_test:
            cls_m, deltas_m, _ = self(mirror_images(batch.images, batch.image_sizes))
            mirrored = (cls_m.float(), deltas_m.float())
        return self.postprocess_fn(
            cls_logits.float(),
            box_deltas.float(),
            priors,
            batch.image_sizes,
            batch.scales,
            mirrored=mirrored,
        )
