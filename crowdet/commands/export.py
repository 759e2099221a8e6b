"""`crowdet export --checkpoint CKPT --format onnx --out FILE [--imgsz H W] [--dynamic] [--half]`.

Writes the network with its box decoding as one ONNX graph (crowdet.deploy), checked against
PyTorch with onnxruntime's CPU provider before it is kept. NMS runs after the graph
(`crowdet.postprocess.decode.postprocess_decoded`); `crowdet detect --checkpoint FILE.onnx` and
`crowdet.Detector.from_checkpoint("FILE.onnx")` do all of it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "export a checkpoint to ONNX, checked against onnxruntime"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, type=Path, help="a .pt written by training")
    p.add_argument("--format", default="onnx", choices=("onnx",), help="export format")
    p.add_argument("--out", required=True, type=Path, help="the .onnx file to write")
    p.add_argument(
        "--imgsz", nargs="+", type=int, metavar="N",
        help="input H W (or one size for a square): the fixed graph size, or with --dynamic the "
        "letterbox size (default: the checkpoint's data.input_size)",
    )  # fmt: skip
    p.add_argument("--dynamic", action="store_true", help="any image height and width")
    p.add_argument(
        "--half", action="store_true",
        help="float16 network (for GPU runtimes); inputs and outputs stay float32",
    )  # fmt: skip
    p.add_argument(
        "--check-images", nargs="+", type=Path, metavar="IMAGE",
        help="images to check the export on (default: the first validation images)",
    )  # fmt: skip


def run(args) -> int:
    from crowdet.deploy.onnx_export import export_onnx

    report = export_onnx(
        args.checkpoint, args.out, args.imgsz, args.dynamic, args.half, args.check_images
    )
    shape = "x".join(map(str, report.input_shape))
    diffs = ", ".join(f"{k} {v:.2g}" for k, v in report.max_diff.items())
    print(f"exported {report.path} (input {shape}, float{'16' if args.half else '32'} network)")
    same = "matching detections (float16 check)" if args.half else "same detections"
    counts = ", ".join(map(str, report.detections))
    print(f"checked with onnxruntime on {report.check_source}: max |difference| {diffs}; "
          f"{same} after NMS ({counts})")  # fmt: skip
    return 0
