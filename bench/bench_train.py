"""How much of a training step is spent waiting for data, with a config's own data.workers.

    .venv/bin/python bench/bench_train.py [--config configs/demo.yaml] [--iters 40] [key=value ...]

Trains `--iters` steps of the config (no evaluation, no checkpoints) in a temporary run folder and
prints the mean data wait, the mean step time (data wait included) and their ratio over the steps
after `--warmup`. The synthetic dataset is generated under data.root when missing.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from timing import config_parser  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = config_parser(__doc__)
    p.add_argument("--iters", type=int, default=40, help="optimizer steps to time")
    p.add_argument("--warmup", type=int, default=5, help="first steps left out of the means")
    return p.parse_args()


def timed_steps(config: Path, overrides: list[str], iters: int) -> tuple[list[dict], object]:
    """Train `iters` steps; -> the per-step records of metrics.jsonl and the resolved config."""
    from crowdet.config import load_config
    from crowdet.engine.trainer import Trainer

    fixed = [f"train.max_iters={iters}", "train.log_interval=1", "train.eval_interval=0"]
    fixed += ["train.checkpoint_interval=0", "train.vis_images=0"]
    cfg = load_config(config, [*overrides, *fixed])
    with tempfile.TemporaryDirectory() as run:
        trainer = Trainer(cfg, Path(run), progress=False)
        trainer.train(final_eval=False)
        lines = (Path(run) / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]
    return [r for r in records if r["type"] == "train"], cfg


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    steps, cfg = timed_steps(args.config, args.overrides, args.iters)
    steps = [r for r in steps if r["iter"] > args.warmup]
    if not steps:
        raise SystemExit("no steps left after --warmup; raise --iters")
    data = sum(r["data_time"] for r in steps) / len(steps)
    step = sum(r["step_time"] for r in steps) / len(steps)
    d, t = cfg.data, cfg.train
    print(f"config {args.config.name}: batch {t.batch_size}, input {d.input_size}px, "
          f"data.workers {d.workers}, torch threads {t.threads or 'default'}")  # fmt: skip
    print(f"steps timed: {len(steps)} (after {args.warmup} warm-up steps)")
    print(f"data wait per step: {data:.3f} s")
    print(f"step time (data wait included): {step:.3f} s")
    print(f"fraction of step time waiting for data: {data / step:.1%}")
    print(f"images per second: {t.batch_size / step:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
