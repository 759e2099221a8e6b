"""The Python API: `Detector.from_checkpoint(path)(image) -> (boxes, scores)`.

`path` is a training checkpoint (.pt: PyTorch) or a file of `crowdet export` (.onnx:
onnxruntime, its CPU provider on device "cpu", CUDA's on "cuda").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from crowdet.config import Config
from crowdet.data.images import read_image
from crowdet.data.preprocess import preprocess
from crowdet.engine.checkpoint import load_checkpoint
from crowdet.engine.weights import checkpoint_config, load_weights, with_overrides
from crowdet.errors import CrowdetError
from crowdet.models.build import build_detector
from crowdet.structures import Detections


class Detector:
    """A trained detector for inference on single images.

    >>> det = Detector.from_checkpoint("runs/demo/train/last.pt")
    >>> boxes, scores = det("photo.jpg")   # boxes (N, 4) xyxy, scores (N,), original pixels
    """

    def __init__(self, model, cfg: Config, device: str | torch.device = "cpu", half: bool = False):
        """model: a DenseDetector, or any object with its `predict(batch)` (an OnnxModel);
        half: float16 autocast (CUDA only)."""
        self.cfg, self.device = cfg, torch.device(device)
        if half and self.device.type != "cuda":
            raise CrowdetError(
                f"half precision needs a CUDA device (got device {self.device}); on the CPU "
                "run in float32 (drop --half)"
            )
        self.half = half
        if isinstance(model, torch.nn.Module):
            model = model.to(self.device).eval()
        self.model = model

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        tta: bool = True,
        half: bool = False,
        overrides: list[str] | None = None,
        compile: bool = False,
    ) -> Detector:
        """tta=False: one pass at the input size, whatever test-time augmentation the
        checkpoint's config asks for (postprocess.test_scales, flip_test); faster on video.
        overrides: `key=value` on the checkpoint's config (data.input_size=640,
        postprocess.score_threshold=0.3). A `.onnx` file runs in onnxruntime (one pass).
        compile: `DenseDetector.compile_for_inference` (slow first call, then faster)."""
        if Path(path).suffix.lower() == ".onnx":
            if compile:
                raise CrowdetError(f"{path}: compile applies to PyTorch checkpoints (.pt)")
            return cls._from_onnx(path, device, half, overrides)
        state = load_checkpoint(path)
        cfg = with_overrides(checkpoint_config(state, path), overrides or [], path)
        if not tta:
            cfg.postprocess.flip_test, cfg.postprocess.test_scales = False, [1.0]
        model = build_detector(cfg)
        load_weights(model, state, path, cfg)
        detector = cls(model, cfg, device, half)
        if compile:
            detector.model.compile_for_inference()
        return detector

    @classmethod
    def _from_onnx(cls, path, device, half: bool, overrides) -> Detector:
        from crowdet.deploy.onnx_engine import OnnxModel

        if half:
            raise CrowdetError(
                f"{path}: --half applies to PyTorch checkpoints; export with `crowdet export "
                "--half` for a float16 ONNX model"
            )
        on_cuda = torch.device(device).type == "cuda"
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if on_cuda else None
        model = OnnxModel(path, providers, threads=torch.get_num_threads())
        model.cfg = with_overrides(model.cfg, overrides or [], path)
        return cls(model, model.cfg, "cpu")

    @torch.no_grad()
    def predict(self, images: list[np.ndarray | str | Path]):
        """Images (BGR arrays or paths) -> list of (boxes (N, 4) xyxy, scores (N,)) tensors."""
        return [(d.boxes, d.scores) for d in self.detections(images)]

    @torch.no_grad()
    def detections(self, images: list[np.ndarray | str | Path]) -> list[Detections]:
        """Images (BGR arrays or paths) -> their Detections (float32, on the CPU), visible boxes
        included when the head predicts them."""
        arrays = [read_image(im) if isinstance(im, str | Path) else im for im in images]
        d = self.cfg.data
        batch = preprocess(arrays, d.input_size, d.size_divisor, d.resize, d.min_size, d.max_size)
        batch = batch.to(self.device)
        with torch.autocast("cuda", torch.float16, enabled=self.half):
            dets = self.model.predict(batch)
        return [_on_cpu(d) for d in dets]

    def __call__(self, image: np.ndarray | str | Path):
        return self.predict([image])[0]


def _on_cpu(d: Detections) -> Detections:
    visible = None if d.visible is None else d.visible.float().cpu()
    return Detections(d.boxes.float().cpu(), d.scores.float().cpu(), d.labels.cpu(), visible)
