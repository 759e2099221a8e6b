"""Timing helper shared by the benchmarks."""

from __future__ import annotations

import time


def best_of(fn, repeat: int = 1):
    """Run fn() `repeat` times -> (its last result, the fastest wall time in seconds)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best
