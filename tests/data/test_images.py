"""read_image, image_size and fill_image_sizes: decoding, bad files, EXIF, header sizes, cache."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from crowdet.data import images
from crowdet.data.images import fill_image_sizes, image_size, read_image
from crowdet.data.records import ImageRecord
from crowdet.errors import DataError


def encode(image: np.ndarray, ext: str = ".jpg", params=()) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return buf.tobytes()


def noise(h: int, w: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w, channels) if channels > 1 else (h, w)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def exif_app1(orientation: int, little_endian: bool = False) -> bytes:
    """A hand-made APP1 Exif segment whose IFD0 holds one Orientation (0x0112, SHORT) entry."""
    e = "<" if little_endian else ">"
    order = b"II" if little_endian else b"MM"
    entry = struct.pack(e + "HHI", 0x0112, 3, 1) + struct.pack(e + "HH", orientation, 0)
    tiff = order + struct.pack(e + "HI", 42, 8) + struct.pack(e + "H", 1) + entry + b"\0" * 4
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def with_exif(jpeg: bytes, orientation: int, little_endian: bool = False) -> bytes:
    return jpeg[:2] + exif_app1(orientation, little_endian) + jpeg[2:]


def png_with_exif(png: bytes, orientation: int, little_endian: bool = False) -> bytes:
    """A PNG with an eXIf chunk (the TIFF block of `exif_app1`) right after IHDR."""
    tiff = exif_app1(orientation, little_endian)[10:]  # skip marker, length, b"Exif\0\0"
    crc = struct.pack(">I", zlib.crc32(b"eXIf" + tiff))
    chunk = struct.pack(">I", len(tiff)) + b"eXIf" + tiff + crc
    return png[:33] + chunk + png[33:]  # 8-byte signature + 25-byte IHDR chunk


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_png_pixels_exact_and_grey_to_bgr(tmp_path):
    img = noise(23, 31)
    assert np.array_equal(read_image(write(tmp_path / "a.png", encode(img, ".png"))), img)
    grey = noise(10, 12, channels=1)
    out = read_image(write(tmp_path / "g.png", encode(grey, ".png")))
    assert out.shape == (10, 12, 3) and all(np.array_equal(out[..., c], grey) for c in range(3))


def test_jpeg_matches_cv2_imread(tmp_path):
    path = write(tmp_path / "a.jpg", encode(noise(40, 50)))
    out = read_image(path)
    assert out.dtype == np.uint8 and np.array_equal(out, cv2.imread(str(path)))


@pytest.mark.parametrize(
    "name, data, expected",
    [
        ("empty.jpg", b"", r"empty \(0 bytes\)"),
        ("text.jpg", b"this is not an image\n", "not a readable image"),
        ("fake.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40 + b"IDATxxIEND", "not a readable image"),
    ],
)
def test_bad_files_named(tmp_path, name, data, expected):
    path = write(tmp_path / name, data)
    with pytest.raises(DataError, match=expected) as info:
        read_image(path)
    assert info.value.path == str(path) and str(path) in str(info.value)
    assert info.value.kind == "bad image"


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(DataError, match="not found") as info:
        read_image(tmp_path / "nope.jpg")
    assert info.value.kind == "missing" and str(tmp_path / "nope.jpg") in str(info.value)
    with pytest.raises(DataError, match="not found"):
        image_size(tmp_path / "nope.jpg")
    with pytest.raises(DataError, match="folder"):
        read_image(tmp_path)


@pytest.mark.parametrize("progressive", [0, 1])
def test_truncated_jpeg_detected_though_cv2_fills_it(tmp_path, progressive):
    data = encode(noise(256, 256), ".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, progressive])
    path = write(tmp_path / "t.jpg", data[: int(len(data) * 0.7)])
    grey = cv2.imread(str(path))  # the silent failure this guards against
    assert grey is not None and grey.shape == (256, 256, 3)
    with pytest.raises(DataError, match="truncated JPEG") as info:
        read_image(path)
    assert info.value.path == str(path)


def test_truncated_png_detected(tmp_path):
    data = encode(noise(64, 64), ".png")
    path = write(tmp_path / "t.png", data[: len(data) - 30])
    with pytest.raises(DataError, match="truncated PNG"):
        read_image(path)


def test_trailing_bytes_after_jpeg_end_accepted(tmp_path):
    img = noise(30, 30)
    data = encode(img)
    out = read_image(write(tmp_path / "pad.jpg", data + b"\0" * 100 + b"junk"))
    assert np.array_equal(out, cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))


@pytest.mark.parametrize("ext", [".jpg", ".png"])
@pytest.mark.parametrize("little_endian", [False, True])
@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_exif_orientation_applied_consistently(tmp_path, orientation, little_endian, ext):
    img = np.zeros((40, 60, 3), np.uint8)
    img[:10, :20] = 255  # a white block in the top-left corner of the stored pixels
    add = with_exif if ext == ".jpg" else png_with_exif
    path = write(tmp_path / f"r{ext}", add(encode(img, ext), orientation, little_endian))
    out = read_image(path)
    rotated = orientation in (6, 8)
    assert out.shape == ((60, 40, 3) if rotated else (40, 60, 3))
    h, w = out.shape[:2]
    assert image_size(path) == (w, h)
    # Orientation 6 = rotate 90 degrees clockwise: the block moves to the top-right corner.
    corner = {1: out[:10, :20], 3: out[-10:, -20:], 6: out[:20, -10:], 8: out[-20:, :10]}
    assert corner[orientation].mean() > 200
    assert abs(out.mean() - 255 * (10 * 20) / (40 * 60)) < 5  # the block is the only white


@pytest.mark.parametrize(
    "ext, params",
    [
        (".jpg", []),
        (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        (".png", []),
        (".bmp", []),
        (".webp", []),
    ],
)
def test_image_size_matches_decoder(tmp_path, ext, params):
    rng = np.random.default_rng(1)
    for i in range(3):
        h, w = rng.integers(1, 300, 2)
        path = write(tmp_path / f"{i}{ext}", encode(noise(h, w, seed=i), ext, params))
        assert image_size(path) == (w, h) == read_image(path).shape[1::-1]


def test_image_size_reads_header_only(tmp_path, monkeypatch):
    path = write(tmp_path / "a.jpg", encode(noise(70, 90)))
    monkeypatch.setattr(images, "read_image", lambda p: pytest.fail("decoded the pixels"))
    assert image_size(path) == (90, 70)
    # a header that cuts off before the frame header falls back to decoding -> truncated error
    monkeypatch.undo()
    cut = write(tmp_path / "cut.jpg", encode(noise(70, 90))[:10])
    with pytest.raises(DataError, match="truncated JPEG"):
        image_size(cut)


def make_records(tmp_path: Path, sizes: list[tuple[int, int]]) -> list[ImageRecord]:
    (tmp_path / "Images").mkdir(exist_ok=True)
    recs = []
    for i, (w, h) in enumerate(sizes):
        path = write(tmp_path / "Images" / f"im{i}.png", encode(noise(h, w, seed=i), ".png"))
        recs.append(ImageRecord(f"im{i}", str(path), source=str(tmp_path / "ann.odgt")))
    return recs


def test_fill_image_sizes_caches_and_invalidates(tmp_path, monkeypatch):
    sizes = [(20, 10), (33, 44), (5, 7)]
    recs = make_records(tmp_path, sizes)
    assert fill_image_sizes(recs, progress=False) == 0
    assert [(r.width, r.height) for r in recs] == sizes
    cache = json.loads((tmp_path / "ann.odgt.sizes.json").read_text())
    assert {k: v[:2] for k, v in cache.items()} == {f"im{i}": list(s) for i, s in enumerate(sizes)}

    fresh = [ImageRecord(r.image_id, r.image_path, source=r.source) for r in recs]
    monkeypatch.setattr(images, "image_size", lambda p: pytest.fail(f"cache not used for {p}"))
    assert fill_image_sizes(fresh, progress=False) == 0
    assert [(r.width, r.height) for r in fresh] == sizes
    monkeypatch.undo()

    # rewrite one image with another size: its entry is stale (file size / mtime changed)
    path = Path(recs[1].image_path)
    write(path, encode(noise(12, 8), ".png"))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = [ImageRecord(r.image_id, r.image_path, source=r.source) for r in recs]
    fill_image_sizes(again, progress=False)
    assert (again[1].width, again[1].height) == (8, 12)
    assert json.loads((tmp_path / "ann.odgt.sizes.json").read_text())["im1"][:2] == [8, 12]


def test_fill_image_sizes_missing_and_bad(tmp_path, caplog):
    recs = make_records(tmp_path, [(4, 4)])
    recs.append(ImageRecord("gone", str(tmp_path / "Images" / "gone.jpg"), source=recs[0].source))
    write(tmp_path / "Images" / "bad.jpg", b"\xff\xd8\xff")
    recs.append(ImageRecord("bad", str(tmp_path / "Images" / "bad.jpg"), source=recs[0].source))
    cache = tmp_path / "elsewhere" / "sizes.json"
    assert fill_image_sizes(recs, cache_path=cache, progress=False) == 2
    assert [(r.width, r.height) for r in recs] == [(4, 4), (0, 0), (0, 0)]
    assert "2 image(s) without a size" in caplog.text and "gone.jpg" in caplog.text
    assert list(json.loads(cache.read_text())) == ["im0"]
    with pytest.raises(DataError, match="gone.jpg: image file not found"):
        fill_image_sizes(recs, cache_path=cache, strict=True, progress=False)
