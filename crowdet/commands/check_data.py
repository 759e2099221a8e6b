"""`crowdet check-data ANN --images DIR`: decode every image once, check every record, print
statistics and every problem with its file, line and box ID."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "validate a dataset: statistics and every problem with its file and line"
MAX_INFO_PRINTED = 20


def add_arguments(p: argparse.ArgumentParser) -> None:
    from crowdet.commands.convert import add_format_options
    from crowdet.data.formats import READ_FORMATS

    p.add_argument("ann", help="annotation file or folder")
    p.add_argument("--images", default=None, help="images folder (default: the format's layout)")
    p.add_argument("--format", choices=READ_FORMATS, default=None, help="default: from ANN")
    p.add_argument("--strict", action="store_true", help="exit non-zero when any problem exists")
    p.add_argument("--report", default=None, help="also write the results as JSON (+ PNG plots)")
    p.add_argument("--no-decode", action="store_true", help="skip decoding the images")
    add_format_options(p)


def _print_stats(stats: dict) -> None:
    ppi, vis, hgt = stats["people_per_image"], stats["visible_fraction"], stats["full_box_height"]
    print(f"  images            {stats['images']}")
    print(
        f"  people            {stats['people']} (per image: mean {ppi['mean']:.1f}, "
        f"median {ppi['median']:g}, max {ppi['max']:g})"
    )
    print(f"  ignore regions    {stats['ignore_regions']}")
    print(f"  without people    {stats['images_without_people']} images")
    print(f"  500+ people       {stats['images_with_500_plus_people']} images")
    for t in ("0.5", "0.7"):
        pairs = stats[f"pairs_iou_over_{t}"]
        print(
            f"  pairs IoU > {t}   {pairs['total']} (per image: mean {pairs['mean']:.2f}, "
            f"max {pairs['max']:g})"
        )
    levels = ", ".join(f"{k} {v}" for k, v in vis["levels"].items())
    n_vis = vis["people_with_visible_box"]
    print(f"  visible fraction  mean {vis['mean']:.2f} over {n_vis} people: {levels}")
    median, p90, top = hgt["median"], hgt["p90"], hgt["max"]
    print(f"  full-box height   median {median:.0f} px, p90 {p90:.0f}, max {top:.0f}")


def _in_file_order(problems: list) -> list:
    return sorted(problems, key=lambda p: (p.path, p.line or 0))


def _print_problems(report) -> None:
    from crowdet.data.report import ERROR_KINDS

    problems = _in_file_order(report.problems)
    errors = [p for p in problems if p.kind in ERROR_KINDS]
    info = [p for p in problems if p.kind not in ERROR_KINDS]
    print(f"problems ({len(errors)}):" if errors else "problems: none")
    for p in errors:
        print(f"  [{p.kind}] {p}")
    if info:
        print(f"notes ({len(info)}):")
        for p in info[:MAX_INFO_PRINTED]:
            print(f"  [{p.kind}] {p}")
        if len(info) > MAX_INFO_PRINTED:
            print(f"  ... {len(info) - MAX_INFO_PRINTED} more (all in --report)")


def _write_report(path: Path, args, fmt: str, report, stats: dict) -> list[Path]:
    from crowdet.data.atomic import atomic_write_text
    from crowdet.data.stats import plot_stats

    prefix = path.with_suffix("") if path.suffix else path
    path.parent.mkdir(parents=True, exist_ok=True)
    plots = plot_stats(stats, prefix)
    data = {
        "annotation": str(args.ann),
        "format": fmt,
        "summary": report.summary(),
        "counts": {"found": report.found, **report.counts},
        "stats": stats,
        "problems": [
            {"kind": p.kind, "path": p.path, "line": p.line, "message": p.reason}
            for p in _in_file_order(report.problems)
        ],
        "plots": [str(p) for p in plots],
    }
    atomic_write_text(path, json.dumps(data, indent=1))
    return plots


def run(args) -> int:
    from crowdet.commands.convert import format_options
    from crowdet.data.convert import read_annotations, resolve_format
    from crowdet.data.stats import dataset_stats
    from crowdet.data.validate import check_records

    fmt = resolve_format(args.ann, args.format)
    records, report = read_annotations(args.ann, fmt, args.images, False, format_options(args))
    check_records(records, report, decode=not args.no_decode)
    stats = dataset_stats(records)
    print(f"{args.ann} ({fmt}): {report.summary()}")
    _print_stats(stats)
    _print_problems(report)
    if args.report:
        plots = _write_report(Path(args.report), args, fmt, report, stats)
        print(f"report: {args.report} (plots: {', '.join(str(p) for p in plots)})")
    if args.strict and report.num_errors:
        print(f"--strict: {report.num_errors} problem(s) found")
        return 1
    return 0
