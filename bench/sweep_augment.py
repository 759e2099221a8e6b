"""The README's augmentation table: the demo recipe with and without each strong augmentation, on
the `demo` and the `crowdhuman` synthetic presets, same budget; one line of AP / MR^-2 / JI each.

    .venv/bin/python bench/sweep_augment.py [--presets demo crowdhuman] [--rows base mosaic ...]
        [--scale 4] [--jobs 2] [--out runs/sweep-augment] [key=value ...]

Each row is `crowdet demo` with the row's overrides (ROWS) and the trailing key=value overrides
(e.g. `train.max_iters=20 train.time_budget=0` for a quick check). `--scale K` multiplies the
demo's time budget (train.time_budget) and step cap (train.max_iters) by K: a strong
augmentation may not pay within the demo's 500 s and should on a longer run. Each preset's set
is made under its --*-root when missing (as many images as the demo's, data.synth). Rows of one
sweep share the machine: compare their metrics, not their times.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sweep_demo import REPO, train

# row name -> overrides of configs/demo.yaml (the strong augmentations as YOLOX uses them)
ROWS = {
    "base": [],
    "mosaic": ["augment.mosaic=1.0"],
    "mixup": ["augment.mosaic=1.0", "augment.mixup=0.5"],  # YOLOX mixes mosaics
    "affine": ["augment.affine=1.0"],
    "crop": ["augment.crop=0.5"],
    "copy_paste": ["augment.copy_paste=0.5"],
    "all": [
        "augment.mosaic=1.0", "augment.mixup=0.5", "augment.affine=1.0",
        "augment.copy_paste=0.5", "augment.strong_off_last=0.15",
    ],
}  # fmt: skip
PRESETS = {"demo": ["data.synth.preset=demo"], "crowdhuman": ["data.synth.preset=crowdhuman"]}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("overrides", nargs="*", metavar="key=value", help="overrides of every row")
    p.add_argument("--presets", nargs="+", choices=list(PRESETS), default=list(PRESETS))
    p.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    p.add_argument("--demo-root", default="data/synth-demo", help="the demo preset's set")
    p.add_argument("--crowdhuman-root", default="data/synth-crowdhuman", help="crowdhuman's set")
    p.add_argument("--scale", type=float, default=1.0, help="budget and step cap times this")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "sweep-augment")
    p.add_argument("--jobs", type=int, default=2, help="rows trained at once")
    p.add_argument("--threads", type=int, default=1, help="torch threads per row")
    p.add_argument("--workers", type=int, default=0, help="data workers per row")
    return p.parse_args()


def scaled(scale: float) -> list[str]:
    """The demo's train.time_budget and train.max_iters times `scale` (none when 1)."""
    if scale == 1.0:
        return []
    from crowdet.config import load_config

    t = load_config(REPO / "configs" / "demo.yaml", []).train
    budget, steps = t.time_budget * scale, round(t.max_iters * scale)
    return [f"train.time_budget={budget:g}", f"train.max_iters={steps}"]


def preset_overrides(args: argparse.Namespace, preset: str) -> list[str]:
    root = args.demo_root if preset == "demo" else args.crowdhuman_root
    return [f"data.root={root}", *PRESETS[preset]]


def jobs(args: argparse.Namespace) -> dict[str, list[str]]:
    """{preset/row: overrides}, checked against the schema before any training."""
    from crowdet.config import load_config

    extra = scaled(args.scale)
    out = {}
    for preset in args.presets:
        for row in args.rows:
            overrides = [*preset_overrides(args, preset), *ROWS[row], *extra, *args.overrides]
            load_config(REPO / "configs" / "demo.yaml", overrides)  # a typo fails here
            out[f"{preset}-{row}"] = overrides
    return out


def main() -> int:
    args = parse_args()
    sys.path.insert(0, str(REPO))
    from crowdet.config import load_config
    from crowdet.engine.data import ensure_dataset
    from crowdet.errors import ConfigError

    try:
        todo = jobs(args)
    except ConfigError as e:
        print(f"sweep_augment: {e}", file=sys.stderr)
        return 2
    for preset in args.presets:  # made once, before the rows share it
        ensure_dataset(
            load_config(
                REPO / "configs" / "demo.yaml", [*preset_overrides(args, preset), *args.overrides]
            )
        )
    start = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda kv: train(*kv, args), todo.items()))
    print(f"{len(results)} runs in {time.perf_counter() - start:.0f} s ({args.jobs} at a time)")
    print(f"{'preset-row':22s} {'AP':>6s} {'MR^-2':>6s} {'JI':>6s} {'steps':>6s}")
    for name, m in results:
        if isinstance(m, str):
            print(f"{name:22s} {m}")
            continue
        print(f"{name:22s} {m['AP']:6.3f} {m['MR']:6.3f} {m['JI']:6.3f} {m['train_iters']:6d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
