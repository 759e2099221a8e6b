"""`crowdet convert SRC DST --from FMT --to FMT`: annotations between odgt, COCO json, ECP,
CityPersons and WiderPerson (the last three are read-only). Output is written atomically; a bad
record or box writes nothing unless --skip-bad; DST may not be SRC."""

from __future__ import annotations

import argparse

HELP = "convert annotations between odgt, COCO json, ECP, CityPersons and WiderPerson"


def add_format_options(p: argparse.ArgumentParser) -> None:
    """--riders / --people-labels: who counts as a person in ECP, CityPersons, WiderPerson."""
    p.add_argument(
        "--riders",
        choices=("person", "ignore"),
        default=None,
        help="riders as people or ignore regions (default: ECP, CityPersons ignore; "
        "WiderPerson person)",
    )
    p.add_argument(
        "--people-labels",
        default=None,
        metavar="LIST",
        help="CityPersons classes / WiderPerson labels read as people, comma-separated "
        "(default 1 / 1,2,3); other labels become ignore regions",
    )


def format_options(args):
    from crowdet.data.convert import ReadOptions
    from crowdet.errors import CrowdetError

    labels = None
    if args.people_labels:
        try:
            labels = tuple(int(v) for v in args.people_labels.split(",") if v.strip())
        except ValueError:
            msg = f"--people-labels must be comma-separated integers, got {args.people_labels!r}"
            raise CrowdetError(msg) from None
    return ReadOptions(riders=args.riders, people_labels=labels)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from crowdet.data.formats import READ_FORMATS, WRITE_FORMATS

    p.add_argument("src", help="annotation file or folder to read")
    p.add_argument("dst", help="annotation file to write")
    p.add_argument("--from", dest="src_format", choices=READ_FORMATS, help="default: from SRC")
    p.add_argument("--to", dest="dst_format", choices=WRITE_FORMATS, help="default: from DST")
    p.add_argument("--images", default=None, help="images folder (default: the format's layout)")
    p.add_argument(
        "--box",
        choices=("full", "visible", "head"),
        default="full",
        help="box kind written as COCO 'bbox' (the others are kept as extra fields)",
    )
    p.add_argument(
        "--strict", action="store_true",
        help="stop at the first problem of any kind (also a missing image when writing COCO)",
    )  # fmt: skip
    p.add_argument(
        "--skip-bad", action="store_true",
        help="write the readable records when some records or boxes are bad (default: write "
        "nothing); the counts of what was left out are printed",
    )  # fmt: skip
    add_format_options(p)


def run(args) -> int:
    from crowdet.data.convert import convert, resolve_format

    src_format = resolve_format(args.src, args.src_format)
    records, report = convert(
        args.src,
        args.dst,
        src_format,
        args.dst_format,
        images_dir=args.images,
        box=args.box,
        strict=args.strict,
        options=format_options(args),
        skip_bad=args.skip_bad,
    )
    people = sum(r.num_people for r in records)
    ignore = sum(int(r.ignore.sum()) for r in records)
    dst_format = resolve_format(args.dst, args.dst_format)
    print(f"read {args.src} ({src_format}): {report.summary()}")
    for kind in ("missing", "bad image"):
        if report.count(kind):
            print(f"  {report.count(kind)} {kind} (first: {report.first(kind)})")
    print(
        f"wrote {args.dst} ({dst_format}): {len(records)} images, {people} people, {ignore} ignore"
    )
    return 0
