"""`crowdet detect --checkpoint CKPT SOURCE... [--out DIR] [--batch N] [--half] [--imgsz N]
[--conf C] [--format odgt|coco] [--save-txt]`: images, folders, videos.

CKPT is a training checkpoint (.pt) or an exported model (.onnx, run by onnxruntime). Writes
`DIR/<ID>.jpg` (or `DIR/<ID>.mp4` for a video) with the detections drawn, and the detections of
every image or video frame (`<ID>_<frame>`, frame numbered from 0 in six digits):
`DIR/detections.odgt` (CrowdHuman result lines, `--format odgt`, what `crowdet eval-dets` reads) or
`DIR/detections.json` (a COCO results list, `--format coco`: image_id is the image's ID, an integer
when the ID is one); with `--save-txt` also `DIR/labels/<ID>.txt`, one line `x1 y1 x2 y2 score` per
detection in original-image pixels. `--conf` drops detections below it from every output. A head
that predicts visible boxes has them drawn in another colour and written as each detection's `vbox`
(`crowdet eval-dets --box visible` scores them); `--set KEY=VALUE` changes the checkpoint's config
(e.g. `postprocess.nms=soft`). An input's ID is its path relative to the folder given (a file given:
its name) without the extension; inputs that would share an ID keep their extension (`x.jpg`,
`x.png`), and the name of the folder given when that is not enough (`a/x.jpg`). Images and frames go
through the model `--batch` at a time, with a progress bar giving frames per second. An unreadable
file is named and skipped; the others are all written and the exit status is 1 (`--strict`: stop at
the first one, writing no detections).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from crowdet.commands.eval import add_compile_argument

HELP = "detect people in images, folders of images and videos"
IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_EXT = {".mp4", ".avi", ".mov", ".mkv", ".webm"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="+", type=Path, metavar="SOURCE", help="image, folder or video")
    p.add_argument(
        "--checkpoint", required=True, type=Path,
        help="a .pt written by training, or an .onnx written by `crowdet export`",
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("runs/detect"), help="output folder")
    p.add_argument("--score", type=float, default=0.3, help="draw detections above this score")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
        help="change the checkpoint's config, e.g. --set postprocess.nms=soft (repeatable)",
    )  # fmt: skip
    p.add_argument("--batch", type=int, default=1, help="images or frames per forward pass")
    p.add_argument("--half", action="store_true", help="float16 inference (CUDA devices only)")
    p.add_argument(
        "--imgsz", type=int, help="letterbox size: the longer image side in the network "
        "(default: the checkpoint's data.input_size; a multiple of data.size_divisor)",
    )  # fmt: skip
    p.add_argument("--conf", type=float, default=0.0,
                   help="keep only detections scoring at least this, in every output")  # fmt: skip
    p.add_argument(
        "--format",
        choices=("odgt", "coco"),
        default="odgt",
        help="detections file: CrowdHuman result lines or a COCO results list",
    )
    p.add_argument(
        "--save-txt",
        action="store_true",
        help="also DIR/labels/<ID>.txt: `x1 y1 x2 y2 score` per detection",
    )
    p.add_argument(
        "--no-tta", action="store_true",
        help="one pass at the input size, without the checkpoint config's test-time "
        "augmentation (postprocess.test_scales, flip_test): several times faster",
    )  # fmt: skip
    add_compile_argument(p)
    p.add_argument(
        "--strict", action="store_true",
        help="stop at the first unreadable file (default: name it, go on, exit 1 at the end)",
    )  # fmt: skip


def expand(sources: list[Path]) -> list[tuple[Path, Path | None]]:
    """(file, folder given or None) for every image and video of `sources`, each file once."""
    from crowdet.errors import CrowdetError

    files, seen = [], set()
    for src in sources:
        if src.is_dir():
            found = sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_EXT | VIDEO_EXT)
            pairs = [(p, src) for p in found]
        elif src.is_file():
            pairs = [(src, None)]
        else:
            raise CrowdetError(f"{src}: no such file or folder")
        for path, folder in pairs:
            if path.resolve() not in seen:
                seen.add(path.resolve())
                files.append((path, folder))
    return files


def _id_choices(path: Path, folder: Path | None) -> list[str]:
    """IDs of one input, from the shortest to the most distinct."""
    name = path.relative_to(folder) if folder is not None else Path(path.name)
    plain = name.with_suffix("").as_posix()
    prefix = folder.resolve().name if folder is not None else path.resolve().parent.name
    return [plain, name.as_posix(), f"{prefix}/{name.as_posix()}"]


def output_ids(files: list[tuple[Path, Path | None]]) -> list[str]:
    """One distinct ID per input (see the module docstring); CrowdetError when even the folder
    names given cannot tell two inputs apart."""
    from crowdet.errors import CrowdetError

    choices = [_id_choices(path, folder) for path, folder in files]
    level = [0] * len(files)
    while True:
        groups: dict[str, list[int]] = {}
        for i, c in enumerate(choices):
            groups.setdefault(c[level[i]], []).append(i)
        clashes = [g for g in groups.values() if len(g) > 1]
        if not clashes:
            return [c[level[i]] for i, c in enumerate(choices)]
        for group in clashes:
            if any(level[i] == len(choices[i]) - 1 for i in group):
                a, b = (files[i][0] for i in group[:2])
                same = choices[group[0]][-1]
                raise CrowdetError(
                    f"{a} and {b} would both be written as {same!r}; rename one, or detect "
                    "them separately"
                )
            for i in group:
                level[i] += 1


def _check_args(args) -> None:
    from crowdet.errors import CrowdetError

    if args.batch < 1:
        raise CrowdetError(f"--batch must be at least 1, got {args.batch}")
    if not 0.0 <= args.conf <= 1.0:
        raise CrowdetError(f"--conf must be a score in [0, 1], got {args.conf}")
    if args.imgsz is not None and args.imgsz <= 0:
        raise CrowdetError(f"--imgsz must be a positive number of pixels, got {args.imgsz}")


def load_detector(args):
    from crowdet.api import Detector

    overrides = list(args.overrides) + ([f"data.input_size={args.imgsz}"] if args.imgsz else [])
    return Detector.from_checkpoint(
        args.checkpoint, args.device, tta=not args.no_tta, half=args.half,
        overrides=overrides, compile=args.compile,
    )  # fmt: skip


def run(args) -> int:
    from tqdm import tqdm

    from crowdet.errors import DataError

    _check_args(args)
    files = expand(args.sources)
    ids = output_ids(files)
    det = load_detector(args)
    args.out.mkdir(parents=True, exist_ok=True)
    sink = Outputs(args.out, args.score, args.conf, args.save_txt)
    skipped = []
    images = [(p, i) for (p, _), i in zip(files, ids, strict=True) if not _is_video(p)]
    videos = [(p, i) for (p, _), i in zip(files, ids, strict=True) if _is_video(p)]
    with tqdm(total=len(images), desc="images", unit="img", disable=not images) as bar:
        for chunk in _chunks(images, args.batch):
            skipped += _detect_images(det, chunk, sink, args.strict)
            bar.update(len(chunk))
    for path, image_id in videos:
        try:
            n = detect_video(det, path, sink, image_id, args.batch)
            print(f"{path}: {n} frames -> {args.out / (image_id + '.mp4')}")
        except DataError as e:
            if args.strict:
                raise
            skipped.append(e)
            print(f"skipped {e}")
    written = sink.write_detections(args.format)
    print(f"detections: {written} ({len(sink.results)} images or frames)")
    if skipped:
        names = ", ".join(e.path for e in skipped[:5]) + (" ..." if len(skipped) > 5 else "")
        print(f"skipped {len(skipped)} unreadable file(s): {names}")
        return 1
    return 0


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXT


def _chunks(items: list, n: int):
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _detect_images(det, chunk, sink: Outputs, strict: bool) -> list:
    """Read, detect (one batch) and write one chunk of (path, ID); -> the DataErrors of the
    unreadable files (raised at once when strict)."""
    from crowdet.data.images import read_image
    from crowdet.errors import DataError

    arrays, kept, skipped = [], [], []
    for path, image_id in chunk:
        try:
            arrays.append(read_image(path))
            kept.append((path, image_id))
        except DataError as e:
            if strict:
                raise
            skipped.append(e)
            print(f"skipped {e}")
    if arrays:
        for (path, image_id), image, d in zip(kept, arrays, det.detections(arrays)):
            drawn, n = sink.add(image_id, image, d)
            sink.picture(image_id, drawn)
            print(f"{path}: {n} people (score >= {sink.draw_score}) -> {image_id}")
    return skipped


class Outputs:
    """Where detections go: pictures, the detections file, per-image text files."""

    def __init__(self, out: Path, draw_score: float, conf: float, save_txt: bool):
        self.out, self.draw_score, self.conf, self.save_txt = out, draw_score, conf, save_txt
        self.results: dict = {}
        self.sizes: dict = {}
        self.visible: dict = {}  # key -> visible boxes (N, 4) of a head that predicts them

    def add(self, key: str, image, dets):
        """Record one image's Detections (those >= conf); -> the picture with those above the
        drawing score drawn, and their number."""
        boxes, scores = dets.boxes.numpy(), dets.scores.numpy()
        keep = scores >= self.conf
        boxes, scores = boxes[keep], scores[keep]
        vis = None if dets.visible is None else dets.visible.numpy()[keep]
        self.results[key], self.sizes[key] = (boxes, scores), (image.shape[1], image.shape[0])
        if vis is not None:
            self.visible[key] = vis
        if self.save_txt:
            self._write_txt(key, boxes, scores)
        return _draw(image, boxes, scores, self.draw_score, vis)

    def picture(self, key: str, drawn) -> None:
        import cv2

        path = self.out / f"{key}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), drawn)

    def _write_txt(self, key: str, boxes, scores) -> None:
        path = self.out / "labels" / f"{key}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [" ".join(f"{v:.2f}" for v in b) + f" {s:.4f}" for b, s in zip(boxes, scores)]
        path.write_text("".join(r + "\n" for r in rows))

    def write_detections(self, fmt: str) -> Path:
        from crowdet.evaluate.detfile import write_coco_results, write_crowdhuman_dets

        if fmt == "coco":
            path = self.out / "detections.json"
            write_coco_results(path, self.results)
        else:
            path = self.out / "detections.odgt"
            write_crowdhuman_dets(path, self.results, self.sizes, self.visible)
        return path


VISIBLE_COLOR = (0, 200, 255)  # BGR: orange, the visible boxes beside the full ones


def _draw(image, boxes, scores, threshold, vis=None):
    from crowdet.visualize import PRED_COLOR, draw_boxes

    keep = scores >= threshold
    if vis is not None:
        image = draw_boxes(image, vis[keep], VISIBLE_COLOR, 1)
    labels = [f"{s:.2f}" for s in scores[keep]]
    return draw_boxes(image, boxes[keep], PRED_COLOR, 2, labels), int(keep.sum())


def detect_video(det, path: Path, sink: Outputs, image_id: str, batch: int = 1) -> int:
    """Detect every frame of a video, `batch` frames at a time, into DIR/<image_id>.mp4 (same
    size and frame rate) and the detections (`<image_id>_<frame>`); -> the frames read."""
    import cv2
    from tqdm import tqdm

    from crowdet.errors import DataError

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError("cannot open the video", str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    writer, frame_no = None, 0
    try:
        with tqdm(total=total, desc=path.name, unit="frame") as bar:
            while frames := _read_frames(cap, batch):
                if writer is None:
                    writer = _video_writer(sink.out / f"{image_id}.mp4", fps, frames[0])
                for frame, d in zip(frames, det.detections(frames)):
                    key = f"{image_id}_{frame_no:06d}"
                    writer.write(sink.add(key, frame, d)[0])
                    frame_no += 1
                bar.update(len(frames))
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    if frame_no == 0:
        raise DataError("no frame could be read from the video", str(path))
    return frame_no


def _read_frames(cap, n: int) -> list:
    frames = []
    while len(frames) < n:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    return frames


def _video_writer(path: Path, fps: float, frame):
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    size = (frame.shape[1], frame.shape[0])
    return cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
