"""The Python API: `Detector.from_checkpoint(path)(image) -> (boxes, scores)`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from crowdet.config import Config
from crowdet.data.images import read_image
from crowdet.data.preprocess import preprocess
from crowdet.engine.checkpoint import load_checkpoint
from crowdet.engine.weights import checkpoint_config, load_weights
from crowdet.models.build import build_detector


class Detector:
    """A trained detector for inference on single images.

    >>> det = Detector.from_checkpoint("runs/demo/train/last.pt")
    >>> boxes, scores = det("photo.jpg")   # boxes (N, 4) xyxy, scores (N,), original pixels
    """

    def __init__(self, model: torch.nn.Module, cfg: Config, device: str | torch.device = "cpu"):
        self.cfg, self.device = cfg, torch.device(device)
        self.model = model.to(self.device).eval()

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device = "cpu", tta: bool = True
    ) -> Detector:
        """tta=False: one pass at the input size, whatever test-time augmentation the
        checkpoint's config asks for (postprocess.test_scales, flip_test); faster on video."""
        state = load_checkpoint(path)
        cfg = checkpoint_config(state, path)
        if not tta:
            cfg.postprocess.flip_test, cfg.postprocess.test_scales = False, [1.0]
        model = build_detector(cfg)
        load_weights(model, state, path, cfg)
        return cls(model, cfg, device)

    @torch.no_grad()
    def predict(self, images: list[np.ndarray | str | Path]):
        """Images (BGR arrays or paths) -> list of (boxes (N, 4) xyxy, scores (N,)) tensors."""
        arrays = [read_image(im) if isinstance(im, str | Path) else im for im in images]
        d = self.cfg.data
        batch = preprocess(arrays, d.input_size, d.size_divisor, d.resize, d.min_size, d.max_size)
        batch = batch.to(self.device)
        return [(d.boxes.cpu(), d.scores.cpu()) for d in self.model.predict(batch)]

    def __call__(self, image: np.ndarray | str | Path):
        return self.predict([image])[0]
