"""End-to-end detection speed: read, preprocess, model, decode, NMS, in images per second.

    python bench/bench_deploy.py [--checkpoint CKPT | --config CFG] [--imgsz 640] [--images DIR]
        [--num 32] [--threads 2] [key=value ...]

Three pipelines on the same JPEG files, each run twice and the faster pass kept: PyTorch one
image at a time (`crowdet detect --batch 1`), onnxruntime one at a time (the model exported with
`crowdet export --dynamic`, checked as usual), and PyTorch `--batch 8`; prints each rate and
the ratios onnxruntime / PyTorch and batch 8 / batch 1. On a CUDA machine also float16 against
float32 (PyTorch, batch 8). One pass at the input size (no test-time augmentation: an exported
graph has none). Without --checkpoint the model of --config (default configs/demo.yaml) gets
random weights (what NMS sees then is not a trained model's: pass a checkpoint for real
figures). Images: --images, else rendered synthetic crowds written as JPEG files.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from crowdet.api import Detector  # noqa: E402
from crowdet.data.images import read_image  # noqa: E402


def parse(argv):
    from timing import config_parser

    p = config_parser(__doc__)
    p.add_argument("--checkpoint", type=Path, help="a trained .pt (default: random weights)")
    p.add_argument("--imgsz", type=int, default=640, help="letterbox size (longer side)")
    p.add_argument("--images", type=Path, help="folder of images (default: rendered crowds)")
    p.add_argument("--num", type=int, default=32, help="images per pass")
    p.add_argument("--batch", type=int, default=8, help="the batch compared with batch 1")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (torch, onnxruntime)")
    return p.parse_args(argv)


def random_checkpoint(config: Path, overrides: list[str], path: Path) -> Path:
    """A checkpoint of the config's model with its initial (random) weights."""
    from crowdet.config import config_to_dict, load_config
    from crowdet.models.build import build_detector

    cfg = load_config(config, overrides)
    torch.manual_seed(0)
    model = build_detector(cfg)
    torch.save({"model": model.state_dict(), "config": config_to_dict(cfg)}, path)
    return path


def image_files(folder: Path | None, num: int, tmp: Path) -> list[Path]:
    if folder is not None:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".png"))
        return files[:num]
    from crowdet.data.synth.presets import resolve_config
    from crowdet.data.synth.render import render_scene

    rng, preset = np.random.default_rng(0), resolve_config("demo")
    files = []
    for i in range(num):
        path = tmp / f"{i:04d}.jpg"
        cv2.imwrite(str(path), render_scene(preset, rng).image)
        files.append(path)
    return files


def rate(det: Detector, files: list[Path], batch: int) -> float:
    """Images per second over `files`, reading included (the faster of two passes)."""
    import time

    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        for i in range(0, len(files), batch):
            det.predict([read_image(p) for p in files[i : i + batch]])
        best = min(best, time.perf_counter() - start)
    return len(files) / best


def main(argv=None) -> int:
    from crowdet.deploy.onnx_export import export_onnx

    args = parse(argv)
    torch.set_num_threads(args.threads)
    size = [f"data.input_size={args.imgsz}"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = args.checkpoint or random_checkpoint(args.config, args.overrides, tmp / "r.pt")
        files = image_files(args.images, args.num, tmp)
        onnx = tmp / "model.onnx"
        # untrained weights (no --checkpoint): near-tied scores may flip a hard-NMS decision
        # between the runtimes, so only the raw outputs are compared then
        export_onnx(
            ckpt, onnx, imgsz=[args.imgsz], dynamic=True, check_images=files[:2],
            check_detections=args.checkpoint is not None,
        )  # fmt: skip
        torch_det = Detector.from_checkpoint(ckpt, tta=False, overrides=size)
        ort_det = Detector.from_checkpoint(onnx)
        rates = {
            "pytorch batch 1": rate(torch_det, files, 1),
            "onnxruntime batch 1": rate(ort_det, files, 1),
            f"pytorch batch {args.batch}": rate(torch_det, files, args.batch),
        }
        if torch.cuda.is_available():
            gpu = Detector.from_checkpoint(ckpt, "cuda", tta=False, overrides=size)
            rates[f"cuda fp32 batch {args.batch}"] = rate(gpu, files, args.batch)
            half = Detector.from_checkpoint(ckpt, "cuda", tta=False, half=True, overrides=size)
            rates[f"cuda fp16 batch {args.batch}"] = rate(half, files, args.batch)
    name = args.checkpoint or f"{args.config} (random weights)"
    print(f"{name}: {len(files)} images at {args.imgsz} px, {args.threads} threads")
    for key, value in rates.items():
        print(f"  {key:<24} {value:7.2f} images/s")
    values = list(rates.values())
    print(f"  onnxruntime / pytorch (batch 1): {values[1] / values[0]:.2f}x")
    print(f"  batch {args.batch} / batch 1 (pytorch):  {values[2] / values[0]:.2f}x")
    if torch.cuda.is_available():
        print(f"  cuda fp16 / fp32 (batch {args.batch}): {values[4] / values[3]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
