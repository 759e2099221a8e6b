"""What each crowd answer buys: train the rows of the README's crowd table on a synthetic preset
with the same budget and print AP / MR^-2 / JI and the recall of crowded people for each.

    .venv/bin/python bench/sweep_crowd.py [--preset crowdhuman] [--preset demo] \
        [--budget "train.time_budget=0 train.max_iters=3000"] [--jobs 1] [--out runs/sweep_crowd]

Rows (overrides of configs/demo.yaml, on top of --budget and the preset's data):
    baseline   hard NMS
    soft       Gaussian Soft-NMS
    visible    full + visible boxes, visible-box-guided NMS
    density    density branch, Adaptive NMS
    emd        K = 2 predictions per prior, EMD loss, Set NMS
Each row runs `crowdet demo` in its own process (bench/sweep_demo.py's `train`); the crowd recall
(crowdet.evaluate.crowd_recall: people overlapping another with IoU > 0.5) is computed from the
row's val_detections.odgt against the preset's validation annotations. A preset's dataset goes
to DATA/synth-<preset> (made once, before the rows; `--data`).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sweep_demo import train

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ROWS = {
    "baseline": ["postprocess.nms=hard"],
    "soft": ["postprocess.nms=soft"],
    "visible": ["model.head.visible=true", "postprocess.nms=visible"],
    "density": ["model.head.density=true", "postprocess.nms=adaptive"],
    "emd": ["model.head.instances=2", "postprocess.nms=set"],
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", action="append", help="synthetic preset(s) (default: both)")
    p.add_argument(
        "--budget", default="train.time_budget=0 train.max_iters=3000",
        help="overrides every row shares: the training budget (and anything else)",
    )  # fmt: skip
    p.add_argument(
        "--data", type=Path, default=Path("data"), help="a preset's data go to DATA/synth-<preset>"
    )
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--out", type=Path, default=REPO / "runs" / "sweep_crowd")
    p.add_argument("--jobs", type=int, default=1, help="rows trained at once")
    p.add_argument("--threads", type=int, default=1, help="torch threads per row")
    p.add_argument("--workers", type=int, default=0, help="data workers per row")
    return p.parse_args(argv)


def preset_overrides(preset: str, data: Path) -> list[str]:
    return [f"data.root={data / f'synth-{preset}'}", f"data.synth.preset={preset}"]


def recall_of(run: Path, overrides: list[str]) -> str:
    """The crowd recall of a finished row, formatted, from its detections and its config's
    validation annotations."""
    from crowdet.config import load_config
    from crowdet.engine import data as D
    from crowdet.evaluate.crowd_recall import crowd_recall
    from crowdet.evaluate.detfile import read_detections

    cfg = load_config(REPO / "configs" / "demo.yaml", overrides)
    records = D.load_records(cfg, "val")
    found = read_detections(run / "val_detections.odgt")
    r = crowd_recall(records, found.dets, cfg.data.box, found.sizes)
    return f"{r.recall:.3f} ({r.found}/{r.people})"


def main(argv=None) -> int:
    args = parse_args(argv)
    from crowdet.config import load_config
    from crowdet.engine.data import ensure_dataset
    from crowdet.errors import ConfigError

    presets = args.preset or ["crowdhuman", "demo"]
    budget = shlex.split(args.budget)
    jobs = {}
    for preset in presets:
        for row in args.rows:
            jobs[f"{preset}-{row}"] = [*preset_overrides(preset, args.data), *budget, *ROWS[row]]
    try:  # a typo fails here, before any training
        for overrides in jobs.values():
            load_config(REPO / "configs" / "demo.yaml", overrides)
    except ConfigError as e:
        print(f"sweep_crowd: {e}", file=sys.stderr)
        return 2
    for preset in presets:
        data = [*preset_overrides(preset, args.data), *budget]
        ensure_dataset(load_config(REPO / "configs" / "demo.yaml", data))
    start = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda kv: train(*kv, args), jobs.items()))
    print(f"{len(results)} rows in {time.perf_counter() - start:.0f} s ({args.jobs} at a time)")
    print(f"budget: {args.budget}")
    print(f"{'row':<22} {'AP':>6} {'MR^-2':>6} {'JI':>6}  crowd recall (IoU > 0.5 pairs)  steps")
    failed = 0
    for name, m in results:
        if isinstance(m, str):
            print(f"{name:<22} {m}")
            failed += 1
            continue
        recall = recall_of(args.out / name, jobs[name])
        print(
            f"{name:<22} {m['AP']:6.3f} {m['MR']:6.3f} {m['JI']:6.3f}  {recall:<30} "
            f"{m['train_iters']}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
