"""A one-stage dense detector: backbone -> neck -> head; the head gives its priors and box coder.

`forward(images)` returns the head's outputs and their priors; `loss(batch)` and
`predict(batch)` wrap the loss and post-processing (both decode boxes through the head's coder)
so the trainer, the evaluator and `crowdet detect` share one path.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from crowdet.models.heads.base import DenseHead
from crowdet.models.preprocess import InputNorm
from crowdet.postprocess.decode import PassOutput
from crowdet.postprocess.tta import mirror_images, resize_images
from crowdet.structures import Batch, Detections, HeadOutput, Priors


class DenseDetector(nn.Module):
    def __init__(
        self,
        backbone: nn.Module,
        neck: nn.Module,
        head: DenseHead,
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
        self.loss_fn, self.postprocess_fn = loss, postprocess
        self.channels_last = channels_last  # images are made NHWC on the way in
        # test-time augmentation: predict on the images resized by each of test_scales, each
        # also mirrored with flip_test; resized inputs are padded to a multiple of size_divisor
        self.flip_test, self.test_scales = flip_test, tuple(test_scales)
        self.size_divisor = size_divisor
        # batch images are BGR pixel values: loss and predict normalise them first (forward's
        # input is normalised)
        self.input_norm = input_norm if input_norm is not None else InputNorm()

    def forward(self, images: torch.Tensor) -> tuple[HeadOutput, Priors]:
        """images (B, 3, H, W) normalised (`input_norm`) -> the head's outputs (cls_logits
        (B, A, C), box_regression (B, A, 4), extras) and their priors (boxes (A, 4), strides,
        level sizes)."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        feats = self.neck(self.backbone(images))
        shapes = [tuple(f.shape[-2:]) for f in feats]
        return self.head(feats), self.head.priors(shapes, device=images.device)

    def compile_for_inference(self) -> DenseDetector:
        """torch.compile the network (backbone, neck, head) in place for `predict`: inductor with
        the weights frozen into the graph, so on the CPU the convolutions run oneDNN's kernels on
        weights packed once, fused with their activations. The same outputs (within float
        rounding). The first call compiles (seconds for the tiny models, 60-110 s for ResNet-50-FPN
        on 2 cores); the first calls at new input sizes compile again, once or twice, until torch's
        automatic dynamic shapes give one graph for every size (measured: three compiles for
        inputs of six sizes). Inference only: the weights become constants
        of the compiled graph (under no_grad): later changes to the parameters do not reach it."""
        for part in (self.backbone, self.neck, self.head):
            part.compile(options={"freezing": True})
        return self

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = self.input_norm(batch.images, batch.image_sizes)
        outputs, priors = self(x)
        return self.loss_fn(outputs.float(), priors, batch, self.head.coder)

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
                outputs, priors = self(x)
                outputs = outputs.float()
                scores = self.head.scores(outputs)
                passes.append(PassOutput(outputs, priors.boxes, sizes, resize, mirrored, scores))
        return self.postprocess_fn(passes, batch.scales, self.head.coder)
