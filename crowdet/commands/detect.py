"""`crowdet detect --checkpoint CKPT SOURCE... [--out DIR] [--set KEY=VALUE]`: images, folders,
videos.

Writes `DIR/<ID>.jpg` (or `DIR/<ID>.mp4` for a video) with the detections drawn, and
`DIR/detections.odgt`: CrowdHuman result lines (one per image or video frame, `<ID>_<frame>`)
that `crowdet eval-dets` reads. A head that predicts visible boxes has them drawn in another
colour and written as each detection's `vbox` (`crowdet eval-dets --box visible` scores them);
`--set` changes the checkpoint's config (e.g. `postprocess.nms=soft`). An input's ID is its
path relative to the folder given (a file given: its name) without the extension; inputs that
would share an ID keep their extension (`x.jpg`, `x.png`), and the name of the folder given
when that is not enough (`a/x.jpg`). An unreadable file is named and skipped; the others are
all written and the exit status is 1 (`--strict`: stop at the first one, writing no
detections).
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
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
        help="change the checkpoint's config, e.g. --set postprocess.nms=soft (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--no-tta", action="store_true",
        help="one pass at the input size, without the checkpoint config's test-time "
        "augmentation (postprocess.test_scales, flip_test): several times faster",
    )  # fmt: skip
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


def run(args) -> int:
    from crowdet.api import Detector
    from crowdet.errors import DataError
    from crowdet.evaluate.detfile import write_crowdhuman_dets

    files = expand(args.sources)
    ids = output_ids(files)
    det = Detector.from_checkpoint(
        args.checkpoint, args.device, tta=not args.no_tta, overrides=args.overrides
    )
    args.out.mkdir(parents=True, exist_ok=True)
    results, sizes, skipped = {}, {}, []
    visible: dict = {}
    for (path, _), image_id in zip(files, ids, strict=True):
        try:
            if path.suffix.lower() in VIDEO_EXT:
                n = detect_video(det, path, args.out, args.score, results, sizes, image_id, visible)
                print(f"{path}: {n} frames -> {args.out / (image_id + '.mp4')}")
            else:
                n = detect_image(det, path, args.out, args.score, results, sizes, image_id, visible)
                print(f"{path}: {n} people (score >= {args.score}) -> {image_id}")
        except DataError as e:
            if args.strict:
                raise
            skipped.append(e)
            print(f"skipped {e}")
    write_crowdhuman_dets(args.out / "detections.odgt", results, sizes, visible)
    print(f"detections: {args.out / 'detections.odgt'} ({len(results)} lines)")
    if skipped:
        names = ", ".join(e.path for e in skipped[:5]) + (" ..." if len(skipped) > 5 else "")
        print(f"skipped {len(skipped)} unreadable file(s): {names}")
        return 1
    return 0


VISIBLE_COLOR = (0, 200, 255)  # BGR: orange, the visible boxes beside the full ones


def _detect(det, image, image_id, results, sizes, visible):
    """Detect one image or frame; its lines go to results / sizes / visible under image_id.
    Returns boxes (N, 4), scores (N,), visible boxes (N, 4) or None as arrays."""
    d = det.detections([image])[0]
    boxes, scores = d.boxes.numpy(), d.scores.numpy()
    vis = None if d.visible is None else d.visible.numpy()
    results[image_id], sizes[image_id] = (boxes, scores), (image.shape[1], image.shape[0])
    if vis is not None:
        visible[image_id] = vis
    return boxes, scores, vis


def _draw(image, boxes, scores, threshold, vis=None):
    from crowdet.visualize import PRED_COLOR, draw_boxes

    keep = scores >= threshold
    labels = [f"{s:.2f}" for s in scores[keep]]
    if vis is not None:
        image = draw_boxes(image, vis[keep], VISIBLE_COLOR, 1)
    return draw_boxes(image, boxes[keep], PRED_COLOR, 2, labels), int(keep.sum())


def detect_image(
    det, path: Path, out: Path, threshold, results, sizes, image_id="", visible=None
) -> int:
    """Detect one image; its lines go to `results` / `sizes` under `image_id` (default: the
    file's stem), the picture to `out/<image_id>.jpg`. Returns the people drawn."""
    import cv2

    from crowdet.data.images import read_image

    image_id = image_id or path.stem
    image = read_image(path)
    boxes, scores, vis = _detect(
        det, image, image_id, results, sizes, {} if visible is None else visible
    )
    drawn, n = _draw(image, boxes, scores, threshold, vis)
    picture = out / f"{image_id}.jpg"
    picture.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(picture), drawn)
    return n


def detect_video(
    det, path: Path, out: Path, threshold, results, sizes, image_id="", visible=None
) -> int:
    import cv2
    from tqdm import tqdm

    from crowdet.errors import DataError

    image_id = image_id or path.stem
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
            key = f"{image_id}_{frame_no:06d}"
            boxes, scores, vis = _detect(
                det, frame, key, results, sizes, {} if visible is None else visible
            )
            drawn, _ = _draw(frame, boxes, scores, threshold, vis)
            if writer is None:
                fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                size = (frame.shape[1], frame.shape[0])
                movie = out / f"{image_id}.mp4"
                movie.parent.mkdir(parents=True, exist_ok=True)
                writer = cv2.VideoWriter(str(movie), fourcc, fps, size)
            writer.write(drawn)
            frame_no += 1
            bar.update(1)
    cap.release()
    if writer is not None:
        writer.release()
    return frame_no
