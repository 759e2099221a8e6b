"""The detector as one traceable graph for export: normalise, network, decode, clip.

The seam every head goes through: the head's outputs (crowdet.structures.HeadOutput), their
detection scores (`DenseHead.scores`: e.g. FCOS's sqrt(class x quality), YOLO's class x
objectness) and boxes decoded by the head's own
coder against its priors; NMS stays outside the graph (`postprocess_decoded`).
"""

from __future__ import annotations

import torch
from torch import nn

from crowdet.models.detector import DenseDetector
from crowdet.postprocess.decode import clip_to_images

INPUT_NAMES = ("images", "image_sizes")
OUTPUT_NAMES = ("scores", "boxes")


class DeployGraph(nn.Module):
    def __init__(self, detector: DenseDetector, half: bool = False):
        """detector: in eval mode; half: the network runs in float16 (inputs and outputs stay
        float32: normalisation before, decoding after the cast back)."""
        super().__init__()
        self.detector, self.half = detector, half

    def forward(
        self, images: torch.Tensor, image_sizes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """images (B, 3, H, W) BGR pixel values, image_sizes (B, 2) int64 (h, w) -> scores
        (B, A, C), boxes (B, A, 4) xyxy in network-input pixels, clipped to each image."""
        det = self.detector
        x = det.input_norm(images, image_sizes)
        if self.half:
            x = x.half()
        outputs, priors = det(x)
        outputs = outputs.float()
        boxes = det.head.coder.decode(priors.boxes[None].float(), outputs.box_regression)
        return det.head.scores(outputs), clip_to_images(boxes, image_sizes[:, None, :])
