"""Time `read_odgt` on a CrowdHuman-train-sized file against plain `json.loads` per line.

    python bench/bench_read.py [--images 15000] [--boxes 340000] [--seed 0]

Writes a random odgt (no images) to a temporary folder: full, visible and head boxes, a few
ignore regions, the CrowdHuman field layout. Prints both times and their ratio.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from crowdet.data.odgt import read_odgt


def write_fake_odgt(path: Path, images: int, boxes: int, seed: int) -> int:
    """A random odgt with `images` lines and about `boxes` boxes; returns the box count."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(boxes / images, images)
    with open(path, "w") as f:
        for i, n in enumerate(counts):
            xy = rng.integers(-100, 1800, (n, 2))
            wh = rng.integers(10, 600, (n, 2))
            ignore = rng.random(n) < 0.05
            gtboxes = []
            for j in range(n):
                x, y, w, h = int(xy[j, 0]), int(xy[j, 1]), int(wh[j, 0]), int(wh[j, 1])
                gtboxes.append(
                    {
                        "tag": "mask" if ignore[j] else "person",
                        "hbox": [x + w // 3, y, w // 3 + 1, h // 6 + 1],
                        "head_attr": {"ignore": 0, "occ": 0, "unsure": 0},
                        "fbox": [x, y, w, h],
                        "vbox": [x, y, w, max(1, h // 2)],
                        "extra": {"ignore": 1} if ignore[j] else {"box_id": j, "occ": 0},
                    }
                )
            f.write(json.dumps({"ID": f"{i:06d},{i * 7919:x}", "gtboxes": gtboxes}) + "\n")
    return int(counts.sum())


def time_json(path: Path) -> tuple[float, int]:
    start = time.perf_counter()
    with open(path, "rb") as f:
        n = sum(len(json.loads(line)["gtboxes"]) for line in f)
    return time.perf_counter() - start, n


def time_read(path: Path) -> tuple[float, int]:
    start = time.perf_counter()
    records = read_odgt(path)
    return time.perf_counter() - start, sum(len(r) for r in records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=15000)
    parser.add_argument("--boxes", type=int, default=340000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "annotation_train.odgt"
        total = write_fake_odgt(path, args.images, args.boxes, args.seed)
        size = path.stat().st_size / 2**20
        print(f"{path.name}: {args.images} lines, {total} boxes, {size:.0f} MiB")
        t_json = min(time_json(path)[0] for _ in range(args.repeat))
        runs = [time_read(path) for _ in range(args.repeat)]
        t_read, n = min(runs)
        assert n == total, (n, total)
        print(f"json.loads per line: {t_json:.2f} s")
        print(f"read_odgt:           {t_read:.2f} s ({total / t_read / 1e3:.0f} k boxes/s)")
        print(f"ratio read_odgt / json.loads: {t_read / t_json:.2f}")


if __name__ == "__main__":
    main()
