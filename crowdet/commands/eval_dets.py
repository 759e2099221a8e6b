"""`crowdet eval-dets --gt GT --dt DT [--out DIR] [--box full|visible|head] [--caltech] [--strict]`.

Detections of non-positive size and GT images without a detection line are counted and warned
about (errors with `--strict`).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from crowdet.errors import CrowdetError

HELP = "evaluate a detection file (CrowdHuman result lines or COCO results) against GT"

logger = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gt", required=True, type=Path, help="ground truth: .odgt or COCO json")
    p.add_argument("--dt", required=True, type=Path, help="detections: CrowdHuman lines or COCO")
    p.add_argument("--out", type=Path, default=None, help="write metrics.json and plots here")
    p.add_argument(
        "--box",
        choices=("full", "visible", "head"),
        default="full",
        help="which GT boxes the detections are (default: full); visible: the `vbox` of "
        "CrowdHuman lines that carry them",
    )
    p.add_argument(
        "--caltech",
        action="store_true",
        help="also the Caltech/CityPersons MR^-2 setups (Reasonable, Small, Heavy, All)",
    )
    p.add_argument("--no-coco", action="store_true", help="skip the COCO metrics")
    p.add_argument(
        "--images",
        type=Path,
        default=None,
        help="images folder, read for the sizes neither the GT nor the detections give",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail on detections of non-positive size and GT images without a detection line",
    )


def _read_gt(path: Path, images: Path | None):
    """(records, COCO id map or None). An .odgt file is read by its own reader, without
    importing the other formats' readers (and OpenCV) that `read_annotations` brings."""
    if path.name.lower().endswith(".odgt"):
        import numpy as np

        from crowdet.data.odgt import read_odgt_report

        # float64 boxes: fractional GT at the IoU = 0.5 boundary must match as in the reference.
        return read_odgt_report(path, images, strict=True, box_dtype=np.float64)[0], None
    from crowdet.data.convert import read_annotations, resolve_format

    fmt = resolve_format(path, None, ("odgt", "coco"))
    records, _ = read_annotations(path, fmt, images, strict=True)
    id_map = None
    if fmt == "coco":
        from crowdet.data.coco import coco_image_ids

        id_map = coco_image_ids(path)
    return records, id_map


def _read_both(gt: Path, dt: Path, images: Path | None, box: str = "full"):
    """(GT records, COCO id map or None, DetectionFile). An .odgt GT is read in a child process
    beside the detections (a COCO GT first: its id map is needed to read the detections); a
    problem in the GT is reported before one in the detections, as when read one after the other."""
    from crowdet.evaluate.beside import Beside
    from crowdet.evaluate.detfile import read_detections

    if not gt.name.lower().endswith(".odgt"):
        records, id_map = _read_gt(gt, images)
        return records, id_map, read_detections(dt, id_map, box)
    gt_job = Beside(_read_gt, gt, images)
    try:
        found = read_detections(dt, None, box)
    except Exception:
        gt_job.result()  # raises the GT's own problem first, if it has one
        raise
    records, id_map = gt_job.result()
    return records, id_map, found


def _fill_missing_sizes(records, sizes: dict) -> None:
    """Read image headers for the images whose size neither file gives."""
    missing = [r for r in records if r.image_id not in sizes and not (r.width and r.height)]
    if missing:
        from crowdet.data.images import fill_image_sizes

        logger.info("reading the sizes of %d images from their files", len(missing))
        fill_image_sizes(missing, cache_path=None, strict=False)


def run(args) -> int:
    from crowdet.evaluate import evaluate, format_table, write_results

    _check_out(args.out)
    records, id_map, found = _read_both(args.gt, args.dt, args.images, args.box)
    found.check_ids({r.image_id for r in records}, args.dt, args.gt)
    found.check([r.image_id for r in records], args.dt, args.strict)
    _fill_missing_sizes(records, found.sizes)
    result = evaluate(
        records, found.dets, args.box, found.sizes, not args.no_coco, args.caltech, parallel=True
    )
    print(format_table(result))
    if args.out is not None:
        try:
            written = write_results(result, args.out)
        except OSError as e:
            raise CrowdetError(f"{args.out}: cannot write the results ({e.strerror or e})") from e
        for name, path in written.items():
            print(f"{name}: {path}")
    return 0


def _check_out(out: Path | None) -> None:
    """Refuse an `--out` that cannot be a folder before any work is done."""
    if out is None:
        return
    blocker = next((p for p in (out, *out.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise CrowdetError(f"{blocker}: is a file; --out names a folder for metrics.json and plots")
