"""Box conversions at the data edge: file xywh lists <-> float32 xyxy arrays, and box checks.

Files store boxes as [x, y, w, h] in pixels; every reader converts them to float32 xyxy arrays of
shape (N, 4) with NaN rows for absent boxes, and every writer converts back to the shortest
integer-or-float xywh that reads back to the same float32 values.
"""

from __future__ import annotations

import contextlib
import gc
import math
from collections.abc import Iterator
from numbers import Real

import numpy as np

NAN4 = (math.nan, math.nan, math.nan, math.nan)


def xywh_to_xyxy(xywh: np.ndarray, dtype=np.float32) -> np.ndarray:
    """(N, 4) xywh (any numeric dtype, NaN rows allowed) -> (N, 4) xyxy of `dtype` (float32).

    The sums are taken in float64, so integer pixel boxes convert exactly (and float64 keeps
    fractional boxes as the CrowdDet evaluator computes them).
    """
    b = np.asarray(xywh, np.float64).reshape(-1, 4)
    with np.errstate(over="ignore"):  # callers reject non-finite results (valid_xywh_rows)
        return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1).astype(dtype)


def _reads_back(xywh: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
    """(N,) True where `xywh` converts back to exactly `xyxy` (float32)."""
    return (xywh_to_xyxy(xywh) == xyxy).all(1)


def xyxy_to_xywh_lists(xyxy: np.ndarray, decimals: int = 4) -> list[list | None]:
    """(N, 4) float32 xyxy -> N lists [x, y, w, h] for JSON (None for NaN rows).

    Values are ints where integral, otherwise rounded to `decimals` when that still reads back to
    the same float32 box, otherwise the exact float64 difference (always reads back exactly).
    """
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    b = xyxy.astype(np.float64)
    exact = np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)
    rounded = np.round(exact, decimals)
    out = np.where(_reads_back(rounded, xyxy)[:, None], rounded, exact)
    finite = np.isfinite(out).all(1)
    safe = np.where(finite[:, None], out, 0.0)
    integral = (safe == np.round(safe)).all(1) & (np.abs(safe) < 2**53).all(1)
    floats = out.tolist()
    ints = np.round(np.clip(safe, -(2**53), 2**53)).astype(np.int64).tolist()
    return [(ints[i] if integral[i] else floats[i]) if finite[i] else None for i in range(len(out))]


def xywh_lists_per_record(arrays: list[np.ndarray]) -> list[list[list | None]]:
    """`xyxy_to_xywh_lists` over many (N_i, 4) arrays in one vectorised pass."""
    if not arrays:
        return []
    flat = xyxy_to_xywh_lists(np.concatenate([np.asarray(a, np.float32) for a in arrays]))
    ends = np.cumsum([len(a) for a in arrays]).tolist()
    return [flat[end - len(a) : end] for a, end in zip(arrays, ends, strict=True)]


def number(value) -> bool:
    """True for a finite JSON number (int or float, not bool)."""
    kind = type(value)
    if kind is int or kind is float:
        return math.isfinite(value)
    return isinstance(value, Real) and kind is not bool and math.isfinite(value)


def numeric_array(values: list, ndim: int) -> np.ndarray | None:
    """`values` as a numeric array of `ndim` dims (last dim 4 when 2-D), or None when it holds
    other types (strings, null, objects) or has another shape."""
    arr = np.array(values)
    if arr.dtype.kind not in "biuf" or arr.ndim != ndim or (ndim == 2 and arr.shape[1] != 4):
        return None
    return arr


def check_xywh(value, name: str) -> str | None:
    """Why `value` is not a valid [x, y, w, h] box with positive size, or None when it is."""
    if not isinstance(value, list | tuple) or len(value) != 4:
        got = f"{len(value)} values" if isinstance(value, list | tuple) else type(value).__name__
        return f"{name} must be 4 numbers [x, y, w, h], got {got}: {value!r}"
    if not all(number(v) for v in value):
        return f"{name} must hold 4 finite numbers, got {value!r}"
    if value[2] <= 0 or value[3] <= 0:
        return f"{name} has zero or negative size (w={value[2]}, h={value[3]})"
    return _float32_error(xywh_to_xyxy(np.array(value, np.float64))[0], name, value)


def _float32_error(xyxy: np.ndarray, name: str, value) -> str | None:
    """Why the float32 corners `xyxy` of a box given as `value` are not a usable box, or None."""
    if not np.isfinite(xyxy).all():
        return f"{name} has corners beyond the float32 range (3.4e38), got {value!r}"
    if xyxy[2] <= xyxy[0] or xyxy[3] <= xyxy[1]:
        return f"{name} has zero size in float32 (too small for its distance from 0): {value!r}"
    return None


def check_xyxy(value, name: str) -> str | None:
    """Why `value` is not a valid [x1, y1, x2, y2] box with positive size, or None when it is."""
    if not isinstance(value, list | tuple) or len(value) != 4:
        got = f"{len(value)} values" if isinstance(value, list | tuple) else type(value).__name__
        return f"{name} must be 4 numbers [x1, y1, x2, y2], got {got}: {value!r}"
    if not all(number(v) for v in value):
        return f"{name} must hold 4 finite numbers, got {value!r}"
    if value[2] <= value[0] or value[3] <= value[1]:
        x1, y1, x2, y2 = value
        return f"{name} has zero or negative size (x1={x1}, x2={x2}, y1={y1}, y2={y2})"
    with np.errstate(over="ignore"):
        xyxy = np.array(value, np.float64).astype(np.float32)
    return _float32_error(xyxy, name, value)


def valid_xywh_rows(xywh: np.ndarray, allow_nan: bool) -> bool:
    """True when every row of (N, 4) xywh is finite with w, h > 0 and stays a finite box of
    positive size as float32 xyxy (or is all-NaN if allowed)."""
    finite = np.isfinite(xywh).all(1)
    ok = finite & (xywh[:, 2] > 0) & (xywh[:, 3] > 0)
    xyxy = xywh_to_xyxy(xywh)
    ok &= np.isfinite(xyxy).all(1) & (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    if allow_nan:
        ok |= np.isnan(xywh).all(1)
    return bool(ok.all())


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while parsing: JSON makes millions of containers and
    no reference cycles, and collections triggered by them cost a quarter of the read time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
