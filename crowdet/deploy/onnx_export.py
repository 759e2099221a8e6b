"""`export_onnx`: a checkpoint -> an .onnx file (crowdet.deploy.graph.DeployGraph), checked.

The graph is traced by torch.onnx's TorchScript exporter (seconds, where the dynamo exporter
takes minutes on these models) with the batch always dynamic and, with `dynamic`, the image
height and width too (priors are computed in the graph from the feature-map sizes). Without
`dynamic` the graph takes a fixed H x W (`imgsz`, default data.input_size square); images are
letterboxed so that they fit (the longer side min(H, W)) and padded to it.

The check: onnxruntime (CPU provider) and PyTorch run the exported graph on real preprocessed
images (`check_images`, else the first validation images of the checkpoint's config, else
rendered synthetic crowds); the raw outputs must agree within `ATOL` and the detections after
crowdet's NMS must be the same. A float16 network's rounding differs between the two runtimes
enough to move candidates across the score threshold and NMS ties, so there the raw outputs must
agree within `ATOL_HALF` and every detection scoring at least `HALF_MIN_SCORE` must have one in
the other run's detections overlapping it by IoU >= `HALF_MIN_IOU`. Otherwise CrowdetError, and
no file is written.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from crowdet.config import Config, config_to_dict
from crowdet.deploy.graph import INPUT_NAMES, OUTPUT_NAMES, DeployGraph
from crowdet.deploy.onnx_engine import (
    CONFIG_KEY,
    HALF_KEY,
    IMGSZ_KEY,
    OnnxModel,
    pad_to,
    postprocess_kwargs,
)
from crowdet.errors import CrowdetError
from crowdet.postprocess.decode import postprocess_decoded

log = logging.getLogger(__name__)

OPSET = 17
ATOL = 1e-3  # largest absolute difference of any raw output, onnxruntime against PyTorch
ATOL_HALF = 5e-2  # the same for a float16 network (compared with the float32 one)
BOX_ATOL = 1e-2  # detections after NMS: box corners (original-image pixels) and scores
HALF_MIN_SCORE, HALF_MIN_IOU = 0.1, 0.9  # float16: the detections that must be matched
NUM_CHECK_IMAGES = 2


@dataclass
class ExportReport:
    path: Path
    input_shape: tuple  # (B, 3, H, W) with names for the dynamic axes
    max_diff: dict[str, float] = field(default_factory=dict)  # output name -> max |ORT - torch|
    detections: list[int] = field(default_factory=list)  # per check image, after NMS
    check_source: str = ""
    half: bool = False


def load_detector(checkpoint: str | Path):
    """(detector in eval mode, its config) from a checkpoint; one-line CrowdetError otherwise."""
    from crowdet.engine.checkpoint import load_checkpoint
    from crowdet.engine.weights import checkpoint_config, load_weights
    from crowdet.models.build import build_detector

    state = load_checkpoint(checkpoint)
    cfg = checkpoint_config(state, checkpoint)
    model = build_detector(cfg)
    load_weights(model, state, checkpoint, cfg)
    model.channels_last = False  # the exported graph is NCHW
    return model.to(memory_format=torch.contiguous_format).eval(), cfg


def graph_size(cfg: Config, imgsz: list[int] | None) -> tuple[int, int]:
    """(H, W) of the example input: --imgsz (one value: square) or data.input_size square."""
    div = cfg.data.size_divisor
    if not imgsz:
        return cfg.data.input_size, cfg.data.input_size
    if len(imgsz) > 2 or any(v <= 0 or v % div for v in imgsz):
        raise CrowdetError(
            f"--imgsz {' '.join(map(str, imgsz))}: give H W (or one size), each a positive "
            f"multiple of the checkpoint's data.size_divisor={div}"
        )
    return (imgsz[0], imgsz[-1])


def export_onnx(
    checkpoint: str | Path,
    out: str | Path,
    imgsz: list[int] | None = None,
    dynamic: bool = False,
    half: bool = False,
    check_images: list[str | Path] | None = None,
    check_detections: bool = True,
) -> ExportReport:
    """Export, then check against PyTorch (see the module docstring). check_detections=False
    compares the raw outputs only: for untrained weights, whose near-tied scores may flip a hard
    NMS decision between the two runtimes (benchmarks)."""
    out = Path(out)
    if out.is_dir():
        raise CrowdetError(f"--out {out}: is a folder; name the .onnx file to write")
    model, cfg = load_detector(checkpoint)
    if cfg.postprocess.nms in ("adaptive", "visible"):
        raise CrowdetError(
            f"{checkpoint}: postprocess.nms={cfg.postprocess.nms} needs the head's "
            f"{'densities' if cfg.postprocess.nms == 'adaptive' else 'visible boxes'}, which the "
            "exported graph does not output; train or export with postprocess.nms=hard|soft|set"
        )
    hw = graph_size(cfg, imgsz)
    # what the file's users letterbox to: the graph's size (a fixed one: so any image fits)
    cfg.data.input_size = max(hw) if dynamic else min(hw)
    cfg.postprocess.flip_test, cfg.postprocess.test_scales = False, [1.0]
    graph = DeployGraph(model.half() if half else model, half=half).eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    _trace(graph, tmp, hw, dynamic)
    _write_metadata(tmp, cfg, None if dynamic else hw, half)
    try:
        atol = ATOL_HALF if half else ATOL
        report = check_export(graph, tmp, cfg, check_images, atol, check_detections)
    except CrowdetError:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out)
    report.path = out
    report.input_shape = ("batch", 3, "height", "width") if dynamic else ("batch", 3, *hw)
    return report


def _trace(graph: DeployGraph, path: Path, hw: tuple[int, int], dynamic: bool) -> None:
    images = torch.zeros(1, 3, *hw)
    sizes = torch.tensor([list(hw)], dtype=torch.int64)
    axes = {"images": {0: "batch"}, "image_sizes": {0: "batch"}}
    axes |= {name: {0: "batch", 1: "priors"} for name in OUTPUT_NAMES}
    if dynamic:
        axes["images"] |= {2: "height", 3: "width"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes on Python values made constants
        torch.onnx.export(
            graph, (images, sizes), str(path), input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES), dynamic_axes=axes, opset_version=OPSET,
            dynamo=False,
        )  # fmt: skip


def _write_metadata(path: Path, cfg: Config, fixed: tuple[int, int] | None, half: bool) -> None:
    import onnx

    proto = onnx.load(str(path))
    meta = {
        CONFIG_KEY: json.dumps(config_to_dict(cfg)),
        IMGSZ_KEY: json.dumps(list(fixed) if fixed else "dynamic"),
        HALF_KEY: "1" if half else "0",
        "crowdet.inputs": "images (B,3,H,W) float32 BGR 0-255; image_sizes (B,2) int64 (h,w)",
        "crowdet.outputs": "scores (B,A,C); boxes (B,A,4) xyxy input pixels; NMS: "
        "crowdet.postprocess.decode.postprocess_decoded",
    }
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def _check_arrays(images, cfg: Config) -> tuple[list[np.ndarray], str]:
    """BGR images to check with, and where they come from."""
    from crowdet.data.images import read_image

    if images:
        return [read_image(p) for p in images], f"{len(images)} given image(s)"
    from crowdet.engine import data as D

    try:
        records = D.load_records(cfg, "val")
        paths = [r.image_path for r in records if Path(r.image_path).is_file()]
    except CrowdetError:
        paths = []
    if paths:
        chosen = paths[:NUM_CHECK_IMAGES]
        return [read_image(p) for p in chosen], f"validation images {', '.join(chosen)}"
    from crowdet.data.synth.presets import resolve_config
    from crowdet.data.synth.render import render_scene

    rng = np.random.default_rng(0)
    preset = resolve_config("demo")
    scenes = [render_scene(preset, rng).image for _ in range(NUM_CHECK_IMAGES)]
    return scenes, "rendered synthetic crowds (no validation images found)"


def check_export(
    graph, path: Path, cfg: Config, images, atol: float, check_detections: bool = True
) -> ExportReport:
    """Raw outputs and detections of onnxruntime against PyTorch on the check images (as one
    padded batch, and with a dynamic graph each image alone too)."""
    from crowdet.data.preprocess import preprocess

    arrays, source = _check_arrays(images, cfg)
    engine = OnnxModel(path)
    batch = preprocess(arrays, cfg.data.input_size, cfg.data.size_divisor)
    report = ExportReport(path, (), check_source=source, half=engine.half)
    batches = [batch]
    if engine.fixed_size is None and len(arrays) > 1:
        batches += [preprocess([a], cfg.data.input_size, cfg.data.size_divisor) for a in arrays]
    for b in batches:
        dets = _compare(graph, engine, b, cfg, atol, report, check_detections)
        if b is batch:
            report.detections = [len(d.scores) for d in dets]
    return report


def _compare(
    graph, engine: OnnxModel, batch, cfg, atol: float, report: ExportReport, detections=True
):
    images = pad_to(batch.images, engine.fixed_size).float()
    with torch.no_grad():
        ref = graph(images, batch.image_sizes)
    got = [torch.from_numpy(a) for a in engine.run(batch.images, batch.image_sizes)]
    for name, a, b in zip(OUTPUT_NAMES, ref, got):
        if a.shape != b.shape:
            raise CrowdetError(
                f"{engine.path}: export check failed: onnxruntime's {name} has shape "
                f"{tuple(b.shape)}, PyTorch's {tuple(a.shape)}"
            )
        diff = float((a - b).abs().max()) if a.numel() else 0.0
        report.max_diff[name] = max(report.max_diff.get(name, 0.0), diff)
        if not diff < atol:
            raise CrowdetError(
                f"{engine.path}: export check failed: {name} differs by {diff:.3g} between "
                f"onnxruntime and PyTorch (allowed {atol:g}); the file was not written"
            )
    kw = postprocess_kwargs(cfg)
    ref_dets = postprocess_decoded(*ref, batch.scales, **kw)
    got_dets = postprocess_decoded(*got, batch.scales, **kw)
    same = matched_detections if report.half else same_detections
    for i, (a, b) in enumerate(zip(ref_dets, got_dets) if detections else ()):
        if not same(a, b):
            raise CrowdetError(
                f"{engine.path}: export check failed: image {i} has {len(b.scores)} detections "
                f"after NMS with onnxruntime, {len(a.scores)} with PyTorch, or they differ; "
                "the file was not written"
            )
    return got_dets


def same_detections(a, b, atol: float = BOX_ATOL) -> bool:
    """The same detections: as many, and each of either has one in the other with its box
    corners and score within atol. Order is not compared: Soft-NMS decays neighbours to scores
    that differ in the last float digits, and those may swap places."""
    if a.boxes.shape != b.boxes.shape:
        return False
    if not len(a.boxes):
        return True
    rows_a = torch.cat([a.boxes, a.scores[:, None]], 1)
    rows_b = torch.cat([b.boxes, b.scores[:, None]], 1)
    close = torch.cdist(rows_a, rows_b, p=float("inf")) <= atol
    return bool(close.any(1).all() and close.any(0).all())


def matched_detections(a, b, min_score: float = HALF_MIN_SCORE, min_iou=HALF_MIN_IOU) -> bool:
    """Every detection of a and of b scoring >= min_score overlaps one of the other's by IoU >=
    min_iou (the float16 check)."""
    from crowdet.boxes import iou

    for x, y in ((a, b), (b, a)):
        strong = x.boxes[x.scores >= min_score]
        if len(strong) and (not len(y.boxes) or (iou(strong, y.boxes).amax(1) < min_iou).any()):
            return False
    return True
