"""`crowdet detect --checkpoint CKPT SOURCE... [--out DIR]`: images, folders, videos.

Writes `DIR/<name>.jpg` (or `.mp4` for a video) with the detections drawn, and
`DIR/detections.odgt`: CrowdHuman result lines (one per image or video frame) that
`crowdet eval-dets` reads.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "detect people in images, folders of images and videos"
IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_EXT = {".mp4", ".avi", ".mov", ".mkv", ".webm"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="+", type=Path, metavar="SOURCE", help="image, folder or video")
    p.add_argument("--checkpoint", required=True, type=Path, help="a .pt written by training")
    p.add_argument("--out", type=Path, default=Path("runs/detect"), help="output folder")
    p.add_argument("--score", type=float, default=0.3, help="draw detections above this score")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    p.add_argument(
        "--no-tta", action="store_true",
        help="one pass at the input size, without the checkpoint config's test-time "
        "augmentation (postprocess.test_scales, flip_test): several times faster",
    )  # fmt: skip


def expand(sources: list[Path]) -> list[Path]:
    from crowdet.errors import CrowdetError

    files = []
    for src in sources:
        if src.is_dir():
            files += sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_EXT | VIDEO_EXT)
        elif src.is_file():
            files.append(src)
        else:
            raise CrowdetError(f"{src}: no such file or folder")
    return files


def run(args) -> int:
    from crowdet.api import Detector
    from crowdet.evaluate.detfile import write_crowdhuman_dets

    det = Detector.from_checkpoint(args.checkpoint, args.device, tta=not args.no_tta)
    args.out.mkdir(parents=True, exist_ok=True)
    results, sizes = {}, {}
    for path in expand(args.sources):
        if path.suffix.lower() in VIDEO_EXT:
            n = detect_video(det, path, args.out, args.score, results, sizes)
            print(f"{path}: {n} frames -> {args.out / (path.stem + '.mp4')}")
        else:
            n = detect_image(det, path, args.out, args.score, results, sizes)
            print(f"{path}: {n} people (score >= {args.score})")
    write_crowdhuman_dets(args.out / "detections.odgt", results, sizes)
    print(f"detections: {args.out / 'detections.odgt'}")
    return 0


def _draw(image, boxes, scores, threshold):
    from crowdet.visualize import PRED_COLOR, draw_boxes

    keep = scores >= threshold
    labels = [f"{s:.2f}" for s in scores[keep]]
    return draw_boxes(image, boxes[keep], PRED_COLOR, 2, labels), int(keep.sum())


def detect_image(det, path: Path, out: Path, threshold: float, results, sizes) -> int:
    import cv2

    from crowdet.data.images import read_image

    image = read_image(path)
    boxes, scores = (t.numpy() for t in det(image))
    results[path.stem], sizes[path.stem] = (boxes, scores), (image.shape[1], image.shape[0])
    drawn, n = _draw(image, boxes, scores, threshold)
    cv2.imwrite(str(out / f"{path.stem}.jpg"), drawn)
    return n


def detect_video(det, path: Path, out: Path, threshold: float, results, sizes) -> int:
    import cv2
    from tqdm import tqdm

    from crowdet.errors import DataError

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError("cannot open the video", str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    writer, frame_no = None, 0
    with tqdm(total=total, desc=path.name, unit="frame") as bar:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            boxes, scores = (t.numpy() for t in det(frame))
            key = f"{path.stem}_{frame_no:06d}"
            results[key], sizes[key] = (boxes, scores), (frame.shape[1], frame.shape[0])
            drawn, _ = _draw(frame, boxes, scores, threshold)
            if writer is None:
                fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                size = (frame.shape[1], frame.shape[0])
                writer = cv2.VideoWriter(str(out / f"{path.stem}.mp4"), fourcc, fps, size)
            writer.write(drawn)
            frame_no += 1
            bar.update(1)
    cap.release()
    if writer is not None:
        writer.release()
    return frame_no
