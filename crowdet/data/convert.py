"""One entry point for every annotation format: read any, write odgt or COCO, convert.

Formats: "odgt" (CrowdHuman), "coco" (COCO json), "ecp" (EuroCity Persons folder or json),
"citypersons" (`.mat` or its COCO-style json), "widerperson" (Annotations folder or split list).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from crowdet.data.citypersons import read_citypersons_report
from crowdet.data.coco import read_coco_report, write_coco
from crowdet.data.ecp import read_ecp_report
from crowdet.data.formats import READ_FORMATS, WRITE_FORMATS
from crowdet.data.images import fill_image_sizes
from crowdet.data.odgt import read_odgt_report, write_odgt
from crowdet.data.records import BOX_KINDS, ImageRecord
from crowdet.data.report import BAD_IMAGE, CORRUPT, DUPLICATE, INVALID_BOX, MISSING, ReadReport
from crowdet.data.widerperson import read_widerperson_report
from crowdet.errors import CrowdetError, DataError

logger = logging.getLogger(__name__)


@dataclass
class ReadOptions:
    """Format-specific choices of who counts as a person.

    Attributes:
        riders: "person" or "ignore" for riders (ECP `rider`, CityPersons class 2, WiderPerson
            label 2); None keeps each format's default (ECP and CityPersons: ignore, WiderPerson:
            person).
        people_labels: CityPersons classes / WiderPerson labels read as people (None: default,
            CityPersons (1,), WiderPerson (1, 2, 3)); the other labels become ignore regions.
    """

    riders: str | None = None
    people_labels: tuple[int, ...] | None = None


def guess_format(path: str | os.PathLike) -> str | None:
    """The format a path most likely holds, from its name (None when unclear)."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".odgt"):
        return "odgt"
    if name.endswith(".mat"):
        return "citypersons"
    if name.endswith((".jpg.txt", ".png.txt")) or path.name == "Annotations":
        return "widerperson"
    if path.is_dir():
        if any(path.rglob("*.json")):
            return "ecp"
        return "widerperson" if any(path.glob("*.txt")) else None
    if name.endswith(".json"):
        return "coco"
    return None


def resolve_format(path: str | os.PathLike, fmt: str | None, formats=READ_FORMATS) -> str:
    """`fmt` checked against `formats`, or guessed from `path`; CrowdetError when neither works."""
    if fmt is None:
        fmt = guess_format(path)
        if fmt is None and Path(path).is_dir():
            raise CrowdetError(
                f"{path}: a folder without ECP .json or WiderPerson .txt annotation files; give "
                f"the annotation file itself, or the format (one of {list(formats)})"
            )
        if fmt is None:
            raise CrowdetError(f"{path}: cannot tell the format; pass one of {list(formats)}")
    if fmt not in formats:
        raise CrowdetError(f"unknown format {fmt!r}; expected one of {list(formats)}")
    return fmt


def _people(options: ReadOptions, default: tuple[int, ...], rider_label: int) -> tuple:
    people = set(options.people_labels if options.people_labels is not None else default)
    if options.riders == "person":
        people.add(rider_label)
    elif options.riders == "ignore":
        people.discard(rider_label)
    return tuple(sorted(people))


def read_annotations(
    path: str | os.PathLike,
    fmt: str | None = None,
    images_dir: str | os.PathLike | None = None,
    strict: bool = False,
    options: ReadOptions | None = None,
    keep_fields: bool = False,
) -> tuple[list[ImageRecord], ReadReport]:
    """Read annotations of any supported format into (records, report); `keep_fields` keeps
    the odgt / COCO fields no record attribute holds, for writing them back."""
    fmt = resolve_format(path, fmt)
    records, report = _read(path, fmt, images_dir, strict, options, keep_fields)
    if report.found == 0 and not report.problems:
        if Path(path).is_dir():
            raise DataError(f"no {fmt} annotation files in this folder; check the path", str(path))
        report.problem(CORRUPT, "holds no annotation records (empty file?)", strict)
    return records, report


def _read(path, fmt, images_dir, strict, options, keep_fields):
    options = options or ReadOptions()
    if fmt == "odgt":
        return read_odgt_report(path, images_dir, strict, keep_fields)
    if fmt == "coco":
        return read_coco_report(path, images_dir, strict, keep_fields)
    if fmt == "ecp":
        return read_ecp_report(path, images_dir, options.riders or "ignore", strict)
    if fmt == "citypersons":
        return read_citypersons_report(path, images_dir, _people(options, (1,), 2), strict)
    people = _people(options, (1, 2, 3), 2)
    ignore = tuple(label for label in range(1, 6) if label not in people)
    return read_widerperson_report(path, images_dir, people, ignore, strict)


def write_annotations(
    records: list[ImageRecord], path: str | os.PathLike, fmt: str, box: str = "full"
) -> None:
    """Write records as odgt or COCO json, atomically; `box` picks COCO's `bbox` kind."""
    if box not in BOX_KINDS:
        raise CrowdetError(f"unknown box kind {box!r}; expected one of {list(BOX_KINDS)}")
    if fmt not in WRITE_FORMATS:
        raise CrowdetError(f"cannot write {fmt!r}; output formats are {list(WRITE_FORMATS)}")
    try:
        _write(records, path, fmt, box)
    except OSError as e:
        raise CrowdetError(f"{path}: cannot write ({e.strerror or e})") from e


def _write(records: list[ImageRecord], path, fmt: str, box: str) -> None:
    if fmt == "odgt":
        if box != "full":
            logger.info("odgt holds full, visible and head boxes; --box %s changes nothing", box)
        write_odgt(records, path)
    else:
        write_coco(records, path, box)


# Problems that leave something of the source out of the output.
LOSSY_KINDS = (CORRUPT, INVALID_BOX, DUPLICATE)


def convert(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    src_format: str | None = None,
    dst_format: str | None = None,
    images_dir: str | os.PathLike | None = None,
    box: str = "full",
    strict: bool = False,
    options: ReadOptions | None = None,
    skip_bad: bool = False,
) -> tuple[list[ImageRecord], ReadReport]:
    """Read `src`, write `dst` atomically; returns what was read.

    A record or box that cannot be read (corrupt, invalid, duplicate) is an error and nothing is
    written, unless `skip_bad` (write the rest; the report counts what was left out). `strict`
    stops at the first problem of any kind. For COCO output, which needs image sizes, unknown
    sizes are read from the image headers; an image missing or unreadable is counted (its size
    is written as 0) or, with `strict`, an error. `dst` may not be `src` or a folder.
    """
    _check_destination(src, dst)
    dst_format = resolve_format(dst, dst_format, WRITE_FORMATS)
    records, report = read_annotations(src, src_format, images_dir, strict, options, True)
    lost = sum(report.count(kind) for kind in LOSSY_KINDS)
    if lost and not skip_bad:
        first = next(p for p in report.problems if p.kind in LOSSY_KINDS)
        raise CrowdetError(
            f"{first}; {lost} bad record(s) or box(es) in all, {dst} not written; fix them, "
            "or pass --skip-bad to write the rest"
        )
    if dst_format == "coco":
        _fill_sizes(records, report, strict)
    write_annotations(records, dst, dst_format, box)
    return records, report


def _check_destination(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    src, dst = Path(src), Path(dst)
    if dst.is_dir():
        raise CrowdetError(f"{dst}: is a folder; name the file to write (.odgt or .json)")
    if dst.exists() and src.exists() and os.path.samefile(src, dst):
        raise CrowdetError(f"{dst}: is the source file; write to another path")


def _fill_sizes(records: list[ImageRecord], report: ReadReport, strict: bool) -> None:
    """Image sizes from the headers for records without one; the others counted as missing or
    bad image (size written as 0), or DataError when strict."""
    unsized = [r for r in records if r.width <= 0 or r.height <= 0]
    on_disk = [r for r in unsized if Path(r.image_path).is_file()]
    if on_disk:
        fill_image_sizes(on_disk, cache_path=None, strict=strict, progress=False)
    readable = {id(r) for r in on_disk}
    for rec in unsized:
        if rec.width > 0 and rec.height > 0:
            continue
        kind, why = (BAD_IMAGE, "unreadable") if id(rec) in readable else (MISSING, "not found")
        msg = f"image {rec.image_id!r}: image file {why}: {rec.image_path}; size written as 0"
        report.problem(kind, msg, strict, rec.source, rec.line)
