"""WiderPerson: one text file per image, `Annotations/<name>.jpg.txt`.

    N                     number of boxes
    label x1 y1 x2 y2     N lines, pixels
Labels: 1 pedestrian, 2 rider, 3 partially visible person, 4 ignore region, 5 crowd.
By default 1, 2 and 3 are people and 4, 5 ignore regions (`people=` / `ignore=` change it; a
label in neither is dropped). Layout: `WiderPerson/{Annotations, Images, train.txt, val.txt}`.
`path` is the Annotations folder, one annotation file, or a split list (`train.txt`: one image
name per line) next to `Annotations/`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from crowdet.data.records import ImageRecord
from crowdet.data.report import CORRUPT, EMPTY, INVALID_BOX, ReadReport
from crowdet.errors import CrowdetError, DataError

logger = logging.getLogger(__name__)

DEFAULT_PEOPLE = (1, 2, 3)
DEFAULT_IGNORE = (4, 5)


def read_widerperson(
    path: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    people: tuple[int, ...] = DEFAULT_PEOPLE,
    ignore: tuple[int, ...] = DEFAULT_IGNORE,
    strict: bool = False,
) -> list[ImageRecord]:
    """Read WiderPerson annotations, see the module docstring."""
    return read_widerperson_report(path, images_dir, people, ignore, strict)[0]


def _annotation_files(path: Path) -> tuple[list[Path], Path]:
    """(annotation files, Annotations folder) for a folder, one file or a split list."""
    if path.is_dir():
        return sorted(path.glob("*.txt")), path
    if not path.is_file():
        raise DataError("WiderPerson annotation file or folder not found", str(path))
    if path.name.endswith((".jpg.txt", ".png.txt")):
        return [path], path.parent
    folder = path.parent / "Annotations"
    names = [n.strip() for n in path.read_text().splitlines() if n.strip()]
    return [folder / (n if n.endswith(".txt") else f"{n}.jpg.txt") for n in names], folder


def read_widerperson_report(
    path: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    people: tuple[int, ...] = DEFAULT_PEOPLE,
    ignore: tuple[int, ...] = DEFAULT_IGNORE,
    strict: bool = False,
) -> tuple[list[ImageRecord], ReadReport]:
    """Like `read_widerperson`, also returning the `ReadReport`."""
    if set(people) & set(ignore):
        raise CrowdetError(f"labels {sorted(set(people) & set(ignore))} are both people and ignore")
    path = Path(path)
    files, folder = _annotation_files(path)
    images_dir = Path(images_dir) if images_dir is not None else folder.parent / "Images"
    report = ReadReport(str(path))
    records = []
    for file in files:
        try:
            rec = _read_file(file, people, ignore, report, strict)
        except DataError as e:
            if strict:
                raise
            report.add(e.kind or CORRUPT, e.reason, e.path, e.line)
            continue
        rec.image_path = str(images_dir / file.name.removesuffix(".txt"))
        if len(rec) == 0:
            report.add(EMPTY, f"image {rec.image_id!r} has no boxes", path=str(file))
        records.append(rec)
    report.found = len(records)
    report.log_summary(logger)
    return records, report


def _read_file(file: Path, people, ignore, report: ReadReport, strict: bool) -> ImageRecord:
    try:
        lines = file.read_text().splitlines()
    except FileNotFoundError:
        raise DataError("annotation file not found", str(file), kind=CORRUPT) from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"unreadable annotation file ({e})", str(file), kind=CORRUPT) from None
    rows = [(i, line.split()) for i, line in enumerate(lines, 1) if line.strip()]
    if not rows or len(rows[0][1]) != 1 or not rows[0][1][0].isdigit():
        raise DataError("first line must be the number of boxes", str(file), 1, kind=CORRUPT)
    declared, rows = int(rows[0][1][0]), rows[1:]
    if declared != len(rows):
        msg = f"declares {declared} boxes but holds {len(rows)}"
        report.problem(CORRUPT, msg, strict, str(file), 1)
    boxes, labels = [], []
    for lineno, fields in rows:
        why = _row_error(fields)
        if why:
            report.problem(INVALID_BOX, why, strict, str(file), lineno)
            continue
        label = int(fields[0])
        if label in people or label in ignore:
            boxes.append([float(v) for v in fields[1:]])
            labels.append(label)
    n = len(boxes)
    return ImageRecord(
        image_id=file.name.removesuffix(".txt").rsplit(".", 1)[0],
        fbox=np.array(boxes, np.float32).reshape(n, 4),
        vbox=np.full((n, 4), np.nan, np.float32),
        hbox=np.full((n, 4), np.nan, np.float32),
        ignore=np.isin(np.array(labels, np.int64), list(ignore)),
        head_ignore=np.zeros(n, bool),
        box_ids=np.arange(n, dtype=np.int64),
        occ=np.full(n, np.nan, np.float32),
        source=str(file),
        line=1,
    )


def _row_error(fields: list[str]) -> str | None:
    if len(fields) != 5:
        return f"expected 'label x1 y1 x2 y2', got {len(fields)} values: {' '.join(fields)}"
    if not fields[0].isdigit():
        return f"label must be an integer 1-5, got {fields[0]!r}"
    try:
        x1, y1, x2, y2 = (float(v) for v in fields[1:])
    except ValueError:
        return f"box must be 4 numbers, got {' '.join(fields[1:])}"
    if not all(np.isfinite([x1, y1, x2, y2])):
        return f"box must be 4 finite numbers, got {' '.join(fields[1:])}"
    if x2 <= x1 or y2 <= y1:
        return f"box has zero or negative size (x1={x1}, y1={y1}, x2={x2}, y2={y2})"
    return None
