"""Train the demo recipe and variants of it side by side and print one line of metrics each.

    .venv/bin/python bench/sweep_demo.py [--jobs 5] [--out runs/sweep] \
        base "lr6:train.lr=0.006" "pos04:assign.pos_iou=0.4 assign.neg_iou=0.3"

A variant is `name` (the demo config as it is) or `name:key=value key=value ...` (overrides of
configs/demo.yaml). Each runs `crowdet demo --out OUT/name` in its own process (`--jobs` at a time,
`--threads` torch threads and `--workers` data workers each) on the same dataset, which is made
first; COCO metrics are skipped. Variants of one sweep share the machine: compare their metrics,
not their times.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("variants", nargs="+", help="name or name:key=value ...")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "sweep")
    p.add_argument("--jobs", type=int, default=2, help="variants trained at once")
    p.add_argument("--threads", type=int, default=1, help="torch threads per variant")
    p.add_argument("--workers", type=int, default=0, help="data workers per variant")
    return p.parse_args()


def variant(spec: str) -> tuple[str, list[str]]:
    name, _, overrides = spec.partition(":")
    return name, overrides.split()


def train(name: str, overrides: list[str], args: argparse.Namespace) -> tuple[str, dict | str]:
    out = args.out / name
    fixed = [f"train.threads={args.threads}", f"data.workers={args.workers}", "eval.coco=false"]
    cmd = [sys.executable, "-m", "crowdet", "demo", "--out", str(out), *fixed, *overrides]
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "sweep.log", "w") as log:
        rc = subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        return name, f"failed (exit {rc}), see {out / 'sweep.log'}"
    return name, json.loads((out / "metrics.json").read_text())


def main() -> int:
    args = parse_args()
    from crowdet.config import load_config
    from crowdet.engine.data import ensure_dataset
    from crowdet.errors import ConfigError

    variants = dict(map(variant, args.variants))
    try:  # a typo fails here, before any training
        for overrides in variants.values():
            load_config(REPO / "configs" / "demo.yaml", overrides)
    except ConfigError as e:
        print(f"sweep_demo: {e}", file=sys.stderr)
        return 2
    ensure_dataset(load_config(REPO / "configs" / "demo.yaml", []))
    start = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda kv: train(*kv, args), variants.items()))
    print(f"{len(results)} variants in {time.perf_counter() - start:.0f} s ({args.jobs} at a time)")
    for name, m in results:
        if isinstance(m, str):
            print(f"{name:12s} {m}")
            continue
        print(
            f"{name:12s} AP {m['AP']:.3f}  MR^-2 {m['MR']:.3f}  JI {m['JI']:.3f}  "
            f"{m['train_iters']} steps  | {' '.join(variants[name]) or '(demo.yaml)'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
