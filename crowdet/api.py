"""The Python API: `Detector.from_checkpoint(path)(image) -> (boxes, scores)`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from crowdet.config import Config, config_from_dict, config_to_dict, merge, parse_overrides
from crowdet.data.images import read_image
from crowdet.data.preprocess import preprocess
from crowdet.engine.checkpoint import load_checkpoint
from crowdet.engine.weights import checkpoint_config, load_weights
from crowdet.models.build import build_detector
from crowdet.structures import Detections


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
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        tta: bool = True,
        overrides: list[str] | None = None,
    ) -> Detector:
        """tta=False: one pass at the input size, whatever test-time augmentation the
        checkpoint's config asks for (postprocess.test_scales, flip_test); faster on video.
        overrides: `key=value` changes to the checkpoint's config (e.g. postprocess.nms=soft)."""
        state = load_checkpoint(path)
        cfg = checkpoint_config(state, path)
        if overrides:
            data = merge(config_to_dict(cfg), parse_overrides(overrides))
            cfg = config_from_dict(data, f"{path} (its config) + overrides")
        if not tta:
            cfg.postprocess.flip_test, cfg.postprocess.test_scales = False, [1.0]
        model = build_detector(cfg)
        load_weights(model, state, path, cfg)
        return cls(model, cfg, device)

    @torch.no_grad()
    def predict(self, images: list[np.ndarray | str | Path]):
        """Images (BGR arrays or paths) -> list of (boxes (N, 4) xyxy, scores (N,)) tensors."""
        return [(d.boxes, d.scores) for d in self.detections(images)]

    @torch.no_grad()
    def detections(self, images: list[np.ndarray | str | Path]) -> list[Detections]:
        """Images (BGR arrays or paths) -> their Detections on the CPU, visible boxes included
        when the head predicts them."""
        arrays = [read_image(im) if isinstance(im, str | Path) else im for im in images]
        size, divisor = self.cfg.data.input_size, self.cfg.data.size_divisor
        batch = preprocess(arrays, size, divisor).to(self.device)
        out = []
        for d in self.model.predict(batch):
            visible = None if d.visible is None else d.visible.cpu()
            out.append(Detections(d.boxes.cpu(), d.scores.cpu(), d.labels.cpu(), visible))
        return out

    def __call__(self, image: np.ndarray | str | Path):
        return self.predict([image])[0]
