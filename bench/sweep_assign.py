"""What each assigner and loss buys: the demo recipe with each, same budget, on two presets.

    .venv/bin/python bench/sweep_assign.py [--iters 3000] [--seconds 0] \
        [--rows max_iou,atss,simota,ota,freeanchor,max_iou_rep] [--presets demo,crowdhuman] \
        [--synth-train 1500 --synth-val 300] [--out runs/sweep_assign] [key=value ...]

Each row is configs/demo.yaml with the overrides of ROWS, trained with `crowdet train` in its
own process for the same budget (--iters steps, or --seconds of training when > 0) on the
synthetic set of each preset (data/synth-<preset>, made first), one run at a time; then one line
of CrowdHuman AP / MR^-2 / JI and seconds per step. A row whose assigner is not in this tree
(e.g. simota before the YOLOX head lands) is skipped and said so. Extra key=value overrides
apply to every run (e.g. train.threads=2).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEMO = REPO / "configs" / "demo.yaml"

# row -> overrides of configs/demo.yaml (an assign.name switch drops the file's max-IoU keys)
ROWS = {
    "max_iou": [],
    "atss": ["assign.name=atss"],
    "simota": ["assign.name=simota"],
    "ota": ["assign.name=ota"],
    "freeanchor": ["assign.name=freeanchor"],
    "max_iou_rep": ["loss.rep_gt=0.5", "loss.rep_box=0.5"],
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("overrides", nargs="*", metavar="key=value", help="applied to every run")
    p.add_argument("--rows", default=",".join(ROWS))
    p.add_argument("--presets", default="demo,crowdhuman")
    p.add_argument("--iters", type=int, default=3000, help="training steps of every run")
    p.add_argument("--seconds", type=float, default=0, help="> 0: a time budget instead")
    p.add_argument("--synth-train", type=int, default=1500)
    p.add_argument("--synth-val", type=int, default=300)
    p.add_argument("--out", type=Path, default=REPO / "runs" / "sweep_assign")
    return p.parse_args()


def run_overrides(preset: str, args: argparse.Namespace) -> list[str]:
    budget = [f"train.max_iters={args.iters}", f"train.time_budget={args.seconds:g}"]
    if args.seconds > 0:
        budget = [f"train.max_iters={10**7}", f"train.time_budget={args.seconds:g}"]
    data = [
        f"data.root={REPO / 'data' / f'synth-{preset}'}"
        + ("" if (args.synth_train, args.synth_val) == (1500, 300) else "-small"),
        f"data.synth.preset={preset}",
        f"data.synth.train={args.synth_train}",
        f"data.synth.val={args.synth_val}",
    ]
    return [*data, *budget, "eval.coco=false", *args.overrides]


def train(out: Path, overrides: list[str]) -> dict | str:
    """Train one run -> the metrics of its last evaluation, its steps and s/step, or why not."""
    cmd = [sys.executable, "-m", "crowdet", "train", str(DEMO), "--out", str(out), "--overwrite"]
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(out / "sweep.log", "w") as log:
        rc = subprocess.run([*cmd, *overrides], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    if rc.returncode != 0:
        return f"failed (exit {rc.returncode}), see {out / 'sweep.log'}"
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r.get("type") == "eval"]
    if not evals:
        return f"no evaluation in {out / 'metrics.jsonl'}"
    steps = [r["step_time"] for r in rows if r.get("type") == "train" and "step_time" in r]
    wall = time.perf_counter() - start
    iters = evals[-1]["iter"]
    steps = steps[1:] or steps  # the first interval holds the warm-up
    per_step = sum(steps) / len(steps) if steps else wall / max(iters, 1)
    return {**evals[-1], "steps": iters, "s_per_step": per_step}


def main() -> int:
    args = parse_args()
    from crowdet.config import load_config
    from crowdet.engine.data import ensure_dataset
    from crowdet.errors import ConfigError
    from crowdet.models.build import ASSIGNERS

    rows = {}
    for name in args.rows.split(","):
        extra = ROWS[name]
        if any(o.startswith("assign.name=") and o.split("=")[1] not in ASSIGNERS for o in extra):
            print(f"{name:12s} skipped: its assigner is not in crowdet.models.build.ASSIGNERS")
            continue
        rows[name] = extra
    presets = args.presets.split(",")
    try:  # a typo fails here, before any training
        for preset in presets:
            for extra in rows.values():
                load_config(DEMO, [*extra, *run_overrides(preset, args)])
    except ConfigError as e:
        print(f"sweep_assign: {e}", file=sys.stderr)
        return 2
    for preset in presets:
        ensure_dataset(load_config(DEMO, run_overrides(preset, args)))
        for name, extra in rows.items():
            out = args.out / preset / name
            m = train(out, [*extra, *run_overrides(preset, args)])
            if isinstance(m, str):
                print(f"{preset:10s} {name:12s} {m}", flush=True)
                continue
            print(
                f"{preset:10s} {name:12s} AP {m['AP']:.3f}  MR^-2 {m['MR']:.3f}  JI {m['JI']:.3f}"
                f"  {m['steps']} steps  {m['s_per_step']:.3f} s/step",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
