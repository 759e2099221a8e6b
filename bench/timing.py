"""Timing and command-line helpers shared by the benchmarks."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def config_parser(doc: str) -> argparse.ArgumentParser:
    """A parser with a benchmark's description, `key=value` overrides and `--config`."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.add_argument("--config", type=Path, default=REPO / "configs" / "demo.yaml")
    return p


def best_of(fn, repeat: int = 1):
    """Run fn() `repeat` times -> (its last result, the fastest wall time in seconds)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best
