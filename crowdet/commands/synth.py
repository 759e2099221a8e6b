"""`crowdet synth OUT`: write the built-in synthetic crowd dataset in CrowdHuman layout."""

from __future__ import annotations

import argparse
import time

HELP = "write a synthetic crowd dataset in CrowdHuman layout (Images/, annotation_*.odgt)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from crowdet.data.synth.presets import PRESETS

    parser.add_argument("out", help="output folder")
    parser.add_argument("--train", type=int, default=1500, metavar="N", help="training images")
    parser.add_argument("--val", type=int, default=300, metavar="N", help="validation images")
    parser.add_argument(
        "--size", type=int, nargs=2, metavar=("W", "H"), help="image size (default: the preset's)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), default="demo", help="crowd statistics (default: demo)"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty folder the generator did not write (replaces its "
        "annotation_*.odgt)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="processes (default: the number of CPUs)",
    )


def format_summary(summary: dict) -> str:
    """The summary statistics as an aligned two-column table."""
    q = summary["height_quantiles"]
    splits = ", ".join(f"{k} {v}" for k, v in summary.get("splits", {}).items())
    rows = [
        ("images", f"{summary['images']}" + (f" ({splits})" if splits else "")),
        ("people per image", f"{summary['people_per_image']:.2f}"),
        ("pairs IoU>0.5 per image", f"{summary['pairs_iou50_per_image']:.2f}"),
        ("pairs IoU>0.7 per image", f"{summary['pairs_iou70_per_image']:.2f}"),
        ("pairs IoU>0.3 per image", f"{summary['pairs_iou30_per_image']:.2f}"),
        ("ignore regions per image", f"{summary['ignore_regions_per_image']:.2f}"),
        ("mean visible fraction", f"{summary['mean_visible_fraction']:.3f}"),
        ("occluded share (occ=1)", f"{summary['occluded_share']:.3f}"),
        (
            "full-box height p5/p25/p50/p75/p95",
            " / ".join(f"{q[k]:.0f}" for k in ("p5", "p25", "p50", "p75", "p95")),
        ),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def run(args: argparse.Namespace) -> int:
    from crowdet.data.synth import generate_dataset

    start = time.perf_counter()
    summary = generate_dataset(
        args.out,
        num_train=args.train,
        num_val=args.val,
        preset=args.preset,
        size=tuple(args.size) if args.size else None,
        seed=args.seed,
        workers=args.workers,
        force=args.force,
    )
    seconds = time.perf_counter() - start
    print(f"synthetic crowd dataset ({args.preset}) written to {args.out} in {seconds:.1f} s")
    print(format_summary(summary))
    return 0
