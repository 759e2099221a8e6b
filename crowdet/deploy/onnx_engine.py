"""An exported .onnx detector run by onnxruntime: the same `predict(batch)` as a DenseDetector.

The file carries the checkpoint's resolved config in its metadata (`crowdet.config`, JSON), so
preprocessing (letterbox to data.input_size, padding) and post-processing (postprocess.*) are
the checkpoint's. A graph exported with a fixed size (`crowdet.imgsz`) gets batches padded to it.
Test-time augmentation (postprocess.flip_test / test_scales) is not part of an exported graph:
one pass at the input size.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from crowdet.config import Config, config_from_dict
from crowdet.errors import CrowdetError
from crowdet.postprocess.decode import postprocess_decoded
from crowdet.structures import Batch, Detections

CONFIG_KEY = "crowdet.config"  # metadata: the resolved config, JSON
IMGSZ_KEY = "crowdet.imgsz"  # metadata: [H, W] of a fixed-size graph, or "dynamic"
HALF_KEY = "crowdet.half"  # metadata: "1" when the network runs in float16


def postprocess_kwargs(cfg: Config) -> dict:
    """The keyword arguments of `postprocess_decoded` from a config's postprocess section."""
    p = cfg.postprocess
    return dict(
        score_threshold=p.score_threshold, pre_nms_topk=p.pre_nms_topk,
        iou_threshold=p.iou_threshold, max_dets=p.max_dets, nms=p.nms,
        soft_sigma=p.soft_sigma, vote_iou=p.vote_iou, soft_method=p.soft_method,
        instances=getattr(cfg.model.head, "instances", 1),
    )  # fmt: skip


def pad_to(images: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """(B, 3, h, w) -> (B, 3, H, W) zero-padded right and below (size None: unchanged)."""
    if size is None:
        return images
    h, w = images.shape[-2:]
    if h > size[0] or w > size[1]:
        raise CrowdetError(
            f"a {h}x{w} input does not fit the exported graph's fixed {size[0]}x{size[1]}; "
            "export with --dynamic or a larger --imgsz"
        )
    return F.pad(images, (0, size[1] - w, 0, size[0] - h))


class OnnxModel:
    """An exported detector: `predict(batch)` -> list[Detections] in original-image pixels."""

    def __init__(self, path: str | Path, providers: list[str] | None = None, threads: int = 0):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise CrowdetError(f"ONNX model not found: {path}")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime's errors on a corrupt or foreign file
            first = " ".join(str(e).split())[:200]
            raise CrowdetError(f"{path}: not a loadable ONNX model ({first})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if CONFIG_KEY not in meta:
            raise CrowdetError(
                f"{path}: not exported by `crowdet export` (no {CONFIG_KEY} metadata)"
            )
        self.cfg = config_from_dict(json.loads(meta[CONFIG_KEY]), f"{path} (its config)")
        imgsz = json.loads(meta.get(IMGSZ_KEY, '"dynamic"'))
        self.fixed_size = tuple(imgsz) if isinstance(imgsz, list) else None
        self.half = meta.get(HALF_KEY) == "1"
        self.path = path

    def run(self, images: torch.Tensor, image_sizes: torch.Tensor) -> tuple[np.ndarray, ...]:
        """The graph's raw outputs (scores (B, A, C), boxes (B, A, 4)) for a padded batch."""
        feed = {
            "images": pad_to(images, self.fixed_size).float().numpy(),
            "image_sizes": image_sizes.to(torch.int64).numpy(),
        }
        return tuple(self.session.run(None, feed))

    def predict(self, batch: Batch) -> list[Detections]:
        scores, boxes = (torch.from_numpy(a) for a in self.run(batch.images, batch.image_sizes))
        return postprocess_decoded(scores, boxes, batch.scales, **postprocess_kwargs(self.cfg))
