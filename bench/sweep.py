"""The README's comparison tables: the demo recipe with one thing changed per row, trained on the
`demo` and the `crowdhuman` synthetic presets with the same budget; AP / MR^-2 / JI, the recall of
crowded people and seconds per step for each.

    .venv/bin/python bench/sweep.py [--tables assign crowd augment zoo] [--presets demo crowdhuman]
        [--steps 500] [--seconds 300] [--jobs 2] [--threads 1] [--out runs/sweep] [key=value ...]

    .venv/bin/python bench/sweep.py --tables --variant "lr10:train.lr=0.01" --variant base  # ad hoc

A row is configs/demo.yaml with the row's changes (ROWS below: a dotted key set to a value; a
mapping replaces the whole section, None deletes the key), written to the row's folder and trained
with `crowdet demo --config` in its own process (`--jobs` at a time, `--threads` torch threads
each). The tables `assign`, `crowd` and `augment` train a fixed number of steps (`--steps`, no time
budget: the figures do not move with the machine's load); `zoo` compares architectures of different
cost, so each row trains for the same CPU time (`--seconds` of `train.budget_clock=cpu`: with 1
thread a row gets the same compute however many others share the machine). A row that only changes
the post-processing (`eval_of`) re-evaluates another row's checkpoint with `crowdet val`; a row's
`train.*` keys are given on the command line after the budget, so a row can set its own. Identical
rows of several tables train once, and a rerun skips the rows already done (OUT/*/*/sweep.json).
Rows sharing the machine: compare their metrics, and their seconds per step only with each other.
Results go to OUT/results.jsonl as they come.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEMO = REPO / "configs" / "demo.yaml"

FCOS = {
    "model.head": {"name": "fcos", "convs": 1, "channels": 48, "norm": "gn",
                   "quality": "centerness"},
    "model.anchors": None,
    "assign": {"name": "fcos", "radius": 1.5, "ignore_ioa": 0.5},
    "loss": {"cls": "focal", "focal_alpha": 0.25, "focal_gamma": 2.0, "box": "giou",
             "box_weight": 1.0},
}  # fmt: skip
YOLOV3_ANCHORS = [[8, 20], [14, 34], [22, 52], [30, 72], [42, 100], [58, 140], [80, 192],
                  [112, 268], [160, 320]]  # fmt: skip
YOLOV3 = {
    "model.neck": {"name": "fpn", "channels": 48, "levels": [3, 4, 5]},
    "model.head": {"name": "yolov3", "anchors": YOLOV3_ANCHORS},
    "model.anchors": None,
    "assign": {"name": "yolov3", "ignore_iou": 0.7, "ignore_ioa": 0.5},
    "loss": {"box": "giou", "box_weight": 1.0, "obj_weight": 1.0},
}
YOLOX = {
    "model.neck": {"name": "pafpn", "variant": "s"},
    "model.head": {"name": "yolox", "channels": 48},
    "model.anchors": None,
    "assign": {"name": "simota", "center_radius": 1.5, "candidate_topk": 10, "iou_weight": 3.0,
               "ignore_ioa": 0.5},
    "loss": {"box": "giou", "box_weight": 5.0, "obj_weight": 1.0},
}  # fmt: skip

# table -> row -> changes of configs/demo.yaml; {"eval_of": row, ...}: the row's checkpoint
# re-evaluated with the other keys as overrides (no training)
ROWS: dict[str, dict[str, dict]] = {
    "assign": {
        "max_iou": {},
        "atss": {"assign": {"name": "atss", "ignore_ioa": 0.5}},
        "simota": {"assign": {"name": "simota", "ignore_ioa": 0.5}},
        "ota": {"assign": {"name": "ota", "ignore_ioa": 0.5}},
        "freeanchor": {"assign": {"name": "freeanchor", "ignore_ioa": 0.5}},
        "max_iou_rep": {"loss.rep_gt": 0.5, "loss.rep_box": 0.5},
    },
    "crowd": {
        "hard_nms": {"eval_of": "max_iou", "postprocess.nms": "hard"},
        "soft_nms": {},
        "visible": {"model.head.visible": True, "postprocess.nms": "visible"},
        "density": {"model.head.density": True, "postprocess.nms": "adaptive"},
        "emd_set": {"model.head.instances": 2, "postprocess.nms": "set"},
    },
    "augment": {
        "base": {},
        "mosaic": {"augment.mosaic": 1.0},
        "mixup": {"augment.mosaic": 1.0, "augment.mixup": 0.5},  # YOLOX mixes mosaics
        "affine": {"augment.affine": 1.0},
        "crop": {"augment.crop": 0.5},
        "copy_paste": {"augment.copy_paste": 0.5},
        "all": {
            "augment.mosaic": 1.0,
            "augment.mixup": 0.5,
            "augment.affine": 1.0,
            "augment.copy_paste": 0.5,
            "augment.strong_off_last": 0.15,
        },
    },  # fmt: skip
    "zoo": {
        "retina_tiny": {},
        "fcos_tiny": FCOS,
        "yolov3_tiny": YOLOV3,
        "yolox_tiny": YOLOX,
        "retina_r18": {"model.backbone": {"name": "resnet18"}},
    },
}
TIMED = {"zoo"}  # tables whose rows train for --seconds instead of --steps


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("overrides", nargs="*", metavar="key=value", help="applied to every row")
    p.add_argument("--tables", nargs="*", choices=list(ROWS), default=list(ROWS))
    p.add_argument("--rows", nargs="+", help="only these rows (names of any table)")
    p.add_argument("--last", nargs="+", default=[], help="rows trained after the others")
    p.add_argument("--variant", action="append", default=[], help="name:key=value ... (own table)")
    p.add_argument(
        "--presets", nargs="+", choices=["demo", "crowdhuman"], default=["demo", "crowdhuman"]
    )
    p.add_argument(
        "--steps", type=int, default=500, help="steps of a fixed-step row (0: the config's budget)"
    )
    p.add_argument("--seconds", type=float, default=300, help="training time of a timed row")
    p.add_argument("--data", type=Path, default=REPO / "data", help="sets in DATA/synth-<preset>")
    p.add_argument("--jobs", type=int, default=2, help="rows trained at once")
    p.add_argument("--threads", type=int, default=1, help="torch threads per row")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "sweep")
    p.add_argument("--report", action="store_true", help="only print OUT's results as tables")
    return p.parse_args(argv)


def set_key(cfg: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for k in parents:
        cfg = cfg.setdefault(k, {})
    if value is None:
        cfg.pop(last, None)
    else:
        cfg[last] = copy.deepcopy(value)


def row_config(base: dict, changes: dict) -> dict:
    cfg = copy.deepcopy(base)
    for key, value in changes.items():
        set_key(cfg, key, value)
    return cfg


def variant_rows(specs: list[str]) -> dict[str, dict]:
    """`name:key=value ...` -> {name: {key: value}} (values parsed as YAML)."""
    rows = {}
    for spec in specs:
        name, _, rest = spec.partition(":")
        rows[name] = {k: yaml.safe_load(v) for k, _, v in (o.partition("=") for o in rest.split())}
    return rows


def common(preset: str, args: argparse.Namespace, timed: bool) -> list[str]:
    budget = ["train.time_budget=0", f"train.max_iters={args.steps}"]
    if timed:
        budget = [f"train.time_budget={args.seconds:g}", "train.budget_clock=cpu"]
        budget.append("train.max_iters=1000000")
    elif args.steps == 0:  # the config's own budget (the demo's 500 s)
        budget = []
    return [
        f"data.root={args.data / f'synth-{preset}'}",
        f"data.synth.preset={preset}",
        f"train.threads={args.threads}",
        "data.workers=0",
        "eval.coco=false",
        *budget,
        *args.overrides,
    ]


def job_key(job: dict) -> str:
    """What a job computes: its config and overrides, or the checkpoint and overrides it scores."""
    what = job.get("config") or str(job["eval_of"])
    return json.dumps([what, job["overrides"]], sort_keys=True)


def run_row(job: dict) -> dict:
    """Train (or re-evaluate) one row -> its metrics, or {"error": why}. A row whose folder holds
    the finished result of the same job (sweep.json) is not run again: a stopped sweep resumes."""
    out: Path = job["out"]
    done = out / "sweep.json"
    if done.exists() and json.loads(done.read_text())["job"] == job_key(job):
        return json.loads(done.read_text())["metrics"]
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if "eval_of" in job:
        ckpt = job["eval_of"] / "train" / "last.pt"
        cmd = ["val", str(ckpt), *job["overrides"], "--out", str(out)]
    else:
        (out / "config.yaml").write_text(yaml.safe_dump(job["config"], sort_keys=False))
        cmd = ["demo", "--config", str(out / "config.yaml"), "--out", str(out), *job["overrides"]]
    with open(out / "sweep.log", "w") as log:
        rc = subprocess.run(
            [sys.executable, "-m", "crowdet", *cmd], cwd=REPO, stdout=log, stderr=subprocess.STDOUT
        ).returncode
    if rc != 0:
        return {"error": f"exit {rc}, see {out / 'sweep.log'}"}
    m = json.loads((out / "metrics.json").read_text())
    m["wall_s"] = round(time.perf_counter() - start, 1)
    if "eval_of" not in job:
        steps = [
            r["step_time"]
            for r in map(json.loads, (out / "train" / "metrics.jsonl").read_text().splitlines())
            if r.get("type") == "train" and "step_time" in r
        ]
        m["s_per_step"] = sum(steps[1:]) / max(len(steps) - 1, 1)  # the first holds the warm-up
    done.write_text(json.dumps({"job": job_key(job), "metrics": m}))
    return m


def crowd_recall_of(out: Path, config: Path, overrides: list[str]) -> float | None:
    from crowdet.config import load_config
    from crowdet.engine import data as D
    from crowdet.evaluate.crowd_recall import crowd_recall
    from crowdet.evaluate.detfile import read_detections

    files = [p for p in (out / "val_detections.odgt", out / "detections.odgt") if p.exists()]
    if not files:
        return None
    dets = files[0]
    cfg = load_config(config, overrides)
    found = read_detections(dets)
    return crowd_recall(D.load_records(cfg, "val"), found.dets, cfg.data.box, found.sizes).recall


def plan(args: argparse.Namespace) -> list[dict]:
    """Every (preset, table, row) as a job; identical trainings share one job."""
    from crowdet.config import load_config

    base = yaml.safe_load(DEMO.read_text())
    tables = {t: ROWS[t] for t in args.tables}
    if args.variant:
        tables["variant"] = variant_rows(args.variant)
    jobs: dict[str, dict] = {}
    for table, rows in tables.items():  # a table's rows on every preset, then the next table
        for preset in args.presets:
            timed = table in TIMED
            for name, changes in rows.items():
                if args.rows and name not in args.rows:
                    continue
                changes = dict(changes)
                source = changes.pop("eval_of", None)
                if source is not None:
                    jobs[f"{preset}/{table}/{name}"] = {
                        "eval_of": source, "preset": preset, "table": table, "row": name,
                        "overrides": [f"{k}={json.dumps(v)}" for k, v in changes.items()],
                    }  # fmt: skip
                    continue
                own = [f"{k}={json.dumps(v)}" for k, v in changes.items() if k.startswith("train.")]
                cfg = row_config(base, {k: v for k, v in changes.items() if k not in own})
                overrides = [*common(preset, args, timed), *own]  # a row's train.* keys win
                key = json.dumps([cfg, overrides], sort_keys=True)
                load_config(DEMO, overrides)  # a typo in the shared overrides fails here
                jobs.setdefault(key, {"config": cfg, "overrides": overrides, "names": []})
                jobs[key]["names"].append((preset, table, name))
    trainings = [j for j in jobs.values() if "config" in j]
    for j in trainings:
        preset, table, name = j["names"][0]
        j["out"] = args.out / preset / name
    evals = [j for j in jobs.values() if "eval_of" in j]
    for j in evals:
        wanted = (j["preset"], j["eval_of"])
        source = next(t for t in trainings if wanted in {(p, n) for p, _, n in t["names"]})
        j["eval_of"] = source["out"]
        j["out"] = args.out / j["preset"] / j["row"]
        j["names"] = [(j["preset"], j["table"], j["row"])]
        j["after"] = source
    last = [j for j in trainings if any(n in args.last for _, _, n in j["names"])]
    return [j for j in trainings if j not in last] + last + evals


def check_configs(jobs: list[dict]) -> None:
    """Build every row's config before anything trains: a bad row fails in a second."""
    import tempfile

    from crowdet.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        for j in jobs:
            if "config" in j:
                path = Path(tmp) / "row.yaml"
                path.write_text(yaml.safe_dump(j["config"], sort_keys=False))
                load_config(path, j["overrides"])


def line(preset: str, table: str, name: str, m: dict) -> str:
    if "error" in m:
        return f"{preset:10s} {table:8s} {name:12s} {m['error']}"
    recall = "" if m.get("crowd_recall") is None else f"  crowd recall {m['crowd_recall']:.3f}"
    pace = f"  {m['train_iters']} steps, {m['s_per_step']:.3f} s/step" if "s_per_step" in m else ""
    return (
        f"{preset:10s} {table:8s} {name:12s} AP {m['AP']:.3f}  MR^-2 {m['MR']:.3f}  "
        f"JI {m['JI']:.3f}{recall}{pace}"
    )


def report(results: Path) -> str:
    """OUT/results.jsonl as one markdown table per table: a row per row name, the presets side by
    side (AP / MR^-2 / JI, crowd recall, s/step); the last result of a row counts."""
    rows = {}
    for r in map(json.loads, results.read_text().splitlines()):
        rows[(r["table"], r["row"], r["preset"])] = r
    tables = dict.fromkeys(t for t, _, _ in rows)
    presets = list(dict.fromkeys(p for _, _, p in rows))
    out = []
    for table in tables:
        out += [f"{table}:", "", "| row | " + " | ".join(presets) + " |"]
        out.append("|---" * (len(presets) + 1) + "|")
        names = dict.fromkeys(n for t, n, _ in rows if t == table)
        for name in sorted(names, key=list(ROWS.get(table, names)).index):
            cells = []
            for preset in presets:
                m = rows.get((table, name, preset))
                if m is None or "error" in m:
                    cells.append("" if m is None else m["error"])
                    continue
                cell = f"{m['AP']:.3f} / {m['MR']:.3f} / {m['JI']:.3f}"
                if m.get("crowd_recall") is not None:
                    cell += f", crowd recall {m['crowd_recall']:.3f}"
                if "s_per_step" in m:
                    cell += f", {m['train_iters']} steps, {m['s_per_step']:.2f} s/step"
                cells.append(cell)
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.report:
        print(report(args.out / "results.jsonl"))
        return 0
    from crowdet.config import load_config
    from crowdet.engine.data import ensure_dataset
    from crowdet.errors import ConfigError

    try:
        jobs = plan(args)
        check_configs(jobs)
    except (ConfigError, StopIteration, KeyError) as e:
        print(f"sweep: {e}", file=sys.stderr)
        return 2
    for preset in args.presets:  # made once, before the rows share it
        ensure_dataset(load_config(DEMO, common(preset, args, False)))
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.jsonl"

    def work(job: dict) -> None:
        if "after" in job:  # an evaluation waits for its training
            while "metrics" not in job["after"]:
                time.sleep(5)
            if "error" in job["after"]["metrics"]:
                job["metrics"] = {"error": "its training failed"}
                return
        m = run_row(job)
        if "error" not in m:
            if "eval_of" in job:  # the trained row's config, scored on this preset
                config = job["eval_of"] / "config.yaml"
                overrides = common(job["preset"], args, False)
            else:
                config, overrides = job["out"] / "config.yaml", job["overrides"]
            m["crowd_recall"] = crowd_recall_of(job["out"], config, overrides)
        job["metrics"] = m
        with open(results, "a") as f:
            for preset, table, name in job["names"]:
                f.write(json.dumps({"preset": preset, "table": table, "row": name, **m}) + "\n")
                print(line(preset, table, name, m), flush=True)

    start = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(work, jobs))
    print(f"{len(jobs)} jobs in {time.perf_counter() - start:.0f} s ({args.jobs} at a time)")
    for j in jobs:
        for preset, table, name in j["names"]:
            print(line(preset, table, name, j["metrics"]))
    return 1 if any("error" in j["metrics"] for j in jobs) else 0


if __name__ == "__main__":
    sys.exit(main())
