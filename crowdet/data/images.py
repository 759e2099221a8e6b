"""The one image decoder of crowdet, header-only image sizes, and a cached size table.

EXIF policy: the EXIF orientation (JPEG APP1 segment, PNG eXIf chunk) is APPLIED (OpenCV's
default), so pixels, widths and heights are those of the image as a viewer shows it.
`read_image` and `image_size` agree on it: for orientations 5-8 (rotated by 90 degrees) the
stored width and height are swapped.

Every failure is a `DataError` naming the path, with `kind` "missing" (no such file) or
"bad image" (zero-byte, truncated, not an image), so callers can count and skip.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from crowdet.data.atomic import atomic_write_text
from crowdet.data.records import ImageRecord
from crowdet.data.report import BAD_IMAGE, MISSING
from crowdet.errors import DataError

logger = logging.getLogger(__name__)

_JPEG_SOI = b"\xff\xd8"
_PNG_SIG = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers (baseline, progressive, lossless, arithmetic); not DHT C4, JPG C8, DAC CC.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STANDALONE = {0x01, *range(0xD0, 0xD9)}  # TEM, RSTn, SOI: no length field
_HEADER_CHUNK = 1 << 16


def _read_bytes(path: str | os.PathLike) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DataError("image file not found", str(path), kind=MISSING) from None
    except IsADirectoryError:
        raise DataError(
            "expected an image file, found a folder", str(path), kind=BAD_IMAGE
        ) from None
    except OSError as e:
        raise DataError(f"cannot read image: {e.strerror}", str(path), kind=BAD_IMAGE) from None
    if not data:
        raise DataError("image file is empty (0 bytes)", str(path), kind=BAD_IMAGE)
    return data


def _truncation(data: bytes) -> str | None:
    """Why a JPEG/PNG byte string is truncated, or None (other formats are not checked here)."""
    if data.startswith(_JPEG_SOI):
        # The last start-of-scan must be followed by an end-of-image marker (FFD9); bytes after
        # it (padding) are allowed. Entropy-coded data never holds FFDA or FFD9 (byte stuffing).
        sos, eoi = data.rfind(b"\xff\xda"), data.rfind(b"\xff\xd9")
        if sos < 0 or eoi < sos:
            return "truncated JPEG (no end-of-image marker FFD9 after the last scan)"
    elif data.startswith(_PNG_SIG):
        if data.rfind(b"IEND") < max(data.rfind(b"IDAT"), 8):
            return "truncated PNG (no IEND chunk after the image data)"
    return None


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to an (H, W, 3) uint8 BGR array, EXIF orientation applied.

    Raises:
        DataError: missing, zero-byte, truncated (JPEG without FFD9 / PNG without IEND) or
            undecodable files; the message names the path.
    """
    data = _read_bytes(path)
    why = _truncation(data)
    if why:
        raise DataError(f"{why}; re-copy or re-download the file", str(path), kind=BAD_IMAGE)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise DataError("not a readable image (OpenCV cannot decode it)", str(path), kind=BAD_IMAGE)
    return image


def _exif_orientation(segment: bytes) -> int:
    """Orientation (1-8) from an APP1 payload starting with b'Exif\\0\\0'; 1 when absent."""
    tiff = segment[6:]
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return 1
    end = "<" if tiff[:2] == b"II" else ">"
    (ifd,) = struct.unpack(end + "I", tiff[4:8])
    if ifd + 2 > len(tiff):
        return 1
    (count,) = struct.unpack(end + "H", tiff[ifd : ifd + 2])
    for i in range(count):
        entry = tiff[ifd + 2 + 12 * i : ifd + 14 + 12 * i]
        if len(entry) < 12:
            break
        tag, typ = struct.unpack(end + "HH", entry[:4])
        if tag == 0x0112 and typ == 3:
            (value,) = struct.unpack(end + "H", entry[8:10])
            return value if 1 <= value <= 8 else 1
    return 1


def _jpeg_size(f) -> tuple[int, int, int]:
    """(width, height, EXIF orientation) from JPEG markers; raises ValueError if unparsable."""
    f.seek(2)
    orientation = 1
    while True:
        byte = f.read(1)
        while byte == b"\xff":  # fill bytes before the marker code
            marker = f.read(1)
            if marker != b"\xff":
                break
        else:
            raise ValueError("no JPEG marker where one was expected")
        if not marker:
            raise ValueError("file ends before the frame header")
        code = marker[0]
        if code in _STANDALONE:
            continue
        if code in (0xD9, 0xDA):
            raise ValueError("no frame header before the image data")
        (length,) = struct.unpack(">H", f.read(2))
        segment = f.read(length - 2)
        if code == 0xE1 and segment.startswith(b"Exif\x00\x00"):
            orientation = _exif_orientation(segment)
        elif code in _SOF:
            height, width = struct.unpack(">HH", segment[1:5])
            return width, height, orientation


def _png_size(f) -> tuple[int, int, int]:
    """(width, height, EXIF orientation) from the PNG chunks before the image data."""
    f.seek(8)
    width = height = None
    orientation = 1
    while True:
        length, kind = struct.unpack(">I4s", f.read(8))
        if kind == b"IHDR":
            width, height = struct.unpack(">II", f.read(8))
            f.seek(length - 8 + 4, os.SEEK_CUR)
        elif kind == b"eXIf":
            orientation = _exif_orientation(b"Exif\x00\x00" + f.read(length))
            f.seek(4, os.SEEK_CUR)
        elif kind in (b"IDAT", b"IEND") or width is None:
            break
        else:
            f.seek(length + 4, os.SEEK_CUR)
    if width is None:
        raise ValueError("no IHDR chunk")
    return width, height, orientation


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image from its header, without decoding the pixels.

    JPEG: the frame header; PNG: the IHDR chunk; both swapped for EXIF orientations 5-8 (APP1
    Exif / eXIf chunk), as `read_image` rotates them. Other formats (or unparsable headers) fall
    back to `read_image`.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if not head:
                raise DataError("image file is empty (0 bytes)", str(path), kind=BAD_IMAGE)
            parse = _jpeg_size if head.startswith(_JPEG_SOI) else None
            parse = _png_size if head == _PNG_SIG else parse
            if parse is not None:
                width, height, orientation = parse(f)
                return (height, width) if orientation >= 5 else (width, height)
    except FileNotFoundError:
        raise DataError("image file not found", str(path), kind=MISSING) from None
    except (ValueError, struct.error, OSError) as e:
        logger.debug("%s: header not parsed (%s), decoding the image", path, e)
    height, width = read_image(path).shape[:2]
    return width, height


def default_cache_path(records: list[ImageRecord]) -> Path | None:
    """`<annotation>.sizes.json` beside the annotation file of the records, if they name one."""
    source = next((r.source for r in records if r.source), "")
    return Path(source + ".sizes.json") if source else None


def _load_cache(path: Path | None) -> dict:
    if path is None or not path.is_file():
        return {}
    try:
        table = json.loads(path.read_text())
    except (ValueError, OSError) as e:
        logger.warning("%s: unreadable size cache (%s); rebuilding it", path, e)
        return {}
    return table if isinstance(table, dict) else {}


def fill_image_sizes(
    records: list[ImageRecord],
    cache_path: str | os.PathLike | None = None,
    strict: bool = False,
    progress: bool = True,
) -> int:
    """Fill `record.width/height` from the image headers, with a JSON cache.

    The cache (`cache_path`, default `<annotation>.sizes.json`) maps `ID -> [w, h, bytes,
    mtime_ns]`; an entry is used only while the image file keeps that size and mtime. Records
    whose image is missing or unreadable keep width = height = 0 (one warning in all), or raise
    `DataError` in strict mode.

    Returns:
        the number of records whose size could not be read.
    """
    cache_path = Path(cache_path) if cache_path is not None else default_cache_path(records)
    cache = _load_cache(cache_path)
    updated, failed = {}, []
    for rec in tqdm(records, desc="image sizes", disable=not progress, leave=False):
        try:
            st = os.stat(rec.image_path)
        except OSError:
            failed.append(DataError("image file not found", rec.image_path, kind=MISSING))
            if strict:
                raise failed[-1] from None
            continue
        entry = cache.get(rec.image_id)
        if not (isinstance(entry, list) and entry[2:] == [st.st_size, st.st_mtime_ns]):
            try:
                entry = [*image_size(rec.image_path), st.st_size, st.st_mtime_ns]
            except DataError as e:
                if strict:
                    raise
                failed.append(e)
                continue
        rec.width, rec.height = int(entry[0]), int(entry[1])
        updated[rec.image_id] = entry
    if failed:
        logger.warning(
            "%d image(s) without a size (missing or unreadable); first: %s", len(failed), failed[0]
        )
    if cache_path is not None and updated != {k: cache.get(k) for k in updated}:
        merged = {**cache, **updated}
        try:
            atomic_write_text(cache_path, json.dumps(merged))
        except OSError as e:
            logger.warning("%s: size cache not written (%s)", cache_path, e)
    return len(failed)
