"""Time the whole `crowdet eval-dets --no-coco` command on a CrowdHuman-val-sized crowded set,
and, when its path is given, the evaluator released with CrowdDet on the same files.

    python bench/bench_eval_dets.py [--images 4370] [--people 100] [--dets 100] [--seed 0]
                                    [--reference PATH/TO/CrowdDet] [--keep DIR] [--repeat N]
                                    [--crowddet-rounding]

The set is random (tests/evaluate/eval_scenes.py): people in clusters crossing the border,
noisy copies of them as detections (duplicates, tied scores) plus false positives, ignore
regions in half of the images. Every image has at least one GT box and a detection line (the
reference crashes otherwise). Two files are written: `gt.odgt` and `dt.odgt`, whose lines also
carry the GT boxes with the tags 1 / -1 (`gtboxes`), as the reference's JI reads them from the
result file (CrowdDet's `tools/test.py` writes them so).

With `--reference` (the CrowdDet checkout, or its `lib` folder), the reference's
`compute_JI.evaluation_all` and `compute_APMR.compute_APMR` run in a child Python on the same
files, and the AP, MR^-2 and JI of both are printed with their differences and the speed ratio
of the two commands (start-up and reading included on both sides), in wall time and in CPU time
(the reference runs 10 processes; on a busy shared machine CPU time is the steadier number).
`--crowddet-rounding` writes boxes with 1 decimal and scores with 5, as CrowdDet's results are.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "evaluate"))

import numpy as np  # noqa: E402
from eval_scenes import random_scene  # noqa: E402

from crowdet.data.odgt import read_odgt, write_odgt  # noqa: E402
from crowdet.evaluate import evaluate  # noqa: E402
from crowdet.evaluate.detfile import read_detections, write_crowdhuman_dets  # noqa: E402

# Runs in a child Python with the reference's `lib` folder first on the path; prints one JSON
# line {"AP", "MR", "JI"}.
REFERENCE_DRIVER = """
import io, json, sys, contextlib
sys.path.insert(0, sys.argv[1])
from evaluate import compute_APMR, compute_JI
with contextlib.redirect_stdout(io.StringIO()):
    _, ji = compute_JI.evaluation_all(sys.argv[3], "box")
    ap, mr = compute_APMR.compute_APMR(sys.argv[3], sys.argv[2], "box")
print(json.dumps({"AP": float(ap), "MR": float(mr), "JI": float(ji)}))
"""


def _round(gt: dict, dt: dict) -> None:
    """Boxes to 1 decimal and scores to 5, as CrowdDet's tools/test.py writes its results."""
    for b in gt["gtboxes"]:
        for key in ("fbox", "vbox", "hbox"):
            b[key] = [round(v, 1) for v in b[key]]
    for d in dt["dtboxes"]:
        d["box"], d["score"] = [round(v, 1) for v in d["box"]], round(d["score"], 5)


def write_set(
    folder: Path, images: int, people: int, dets: int, seed: int, rounding: bool = False
) -> tuple[int, int]:
    """Write gt.odgt and dt.odgt (see the module docstring) -> (people, detections) written."""
    rng = np.random.default_rng(seed)
    records, found, sizes = [], {}, {}
    for i in range(images):
        n_people = int(rng.integers(1, 2 * people + 1))
        n_dets = int(rng.integers(0, 2 * dets + 1))
        n_ignore = int(rng.integers(1, 4)) if rng.random() < 0.5 else 0
        rec, boxes, scores = random_scene(rng, f"img{i:05d}", n_people, n_dets, n_ignore, "full")
        records.append(rec)
        found[rec.image_id] = (boxes, scores)
        sizes[rec.image_id] = (rec.width, rec.height)
    write_odgt(records, folder / "gt.odgt")
    write_crowdhuman_dets(folder / "dt_plain.odgt", found, sizes)
    gt_lines = (folder / "gt.odgt").read_text().splitlines()
    dt_lines = (folder / "dt_plain.odgt").read_text().splitlines()
    with open(folder / "dt.odgt", "w") as f, open(folder / "gt.odgt", "w") as g:
        for gt_line, dt_line in zip(gt_lines, dt_lines):
            gt, dt = json.loads(gt_line), json.loads(dt_line)
            if rounding:
                _round(gt, dt)
            dt["gtboxes"] = [
                {"box": b["fbox"], "tag": -1 if b["tag"] != "person" else 1} for b in gt["gtboxes"]
            ]
            f.write(json.dumps(dt) + "\n")
            g.write(json.dumps(gt) + "\n")
    os.remove(folder / "dt_plain.odgt")
    num_people = sum(int((~r.ignore).sum()) for r in records)
    return num_people, sum(len(s) for _, s in found.values())


def run_timed(cmd: list[str]) -> tuple[str, float, float]:
    """Run a command -> (its stdout, wall seconds, CPU seconds of it and its children); raise
    with its stderr when it fails. The CPU time is what a busy shared machine distorts least."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed:\n{done.stderr[-3000:]}")
    return done.stdout, elapsed, cpu


def crowdet_metrics(folder: Path) -> tuple[dict[str, float], float, float]:
    """Time `crowdet eval-dets --no-coco` (no `--out`: no plots) -> ({"AP", "MR", "JI"} at full
    precision, wall s, CPU s). The printed table has 2 decimals, so the values are computed again
    in this process by the same readers and `evaluate`."""
    gt, dt = folder / "gt.odgt", folder / "dt.odgt"
    cmd = [sys.executable, "-m", "crowdet", "eval-dets", "--gt", str(gt), "--dt", str(dt)]
    _, elapsed, cpu = run_timed([*cmd, "--no-coco"])
    found = read_detections(dt)
    result = evaluate(
        read_odgt(gt, box_dtype=np.float64), found.dets, sizes=found.sizes, coco=False
    )
    return {k: float(getattr(result, k)) for k in ("AP", "MR", "JI")}, elapsed, cpu


def reference_metrics(folder: Path, reference: Path) -> tuple[dict[str, float], float, float]:
    """Run the released evaluator on the same files -> ({"AP", "MR", "JI"}, wall s, CPU s)."""
    lib = reference / "lib" if (reference / "lib" / "evaluate").is_dir() else reference
    cmd = [sys.executable, "-c", REFERENCE_DRIVER, str(lib)]
    stdout, elapsed, cpu = run_timed([*cmd, str(folder / "gt.odgt"), str(folder / "dt.odgt")])
    return json.loads(stdout.strip().splitlines()[-1]), elapsed, cpu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=4370, help="images in the set")
    p.add_argument("--people", type=int, default=100, help="mean people per image")
    p.add_argument("--dets", type=int, default=100, help="mean detections per image")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reference", type=Path, default=None, help="CrowdDet checkout (or its lib)")
    p.add_argument("--keep", type=Path, default=None, help="write the set here and keep it")
    p.add_argument("--repeat", type=int, default=1, help="time crowdet this many times (best)")
    p.add_argument(
        "--crowddet-rounding",
        action="store_true",
        help="boxes to 1 decimal, scores to 5, as CrowdDet's tools/test.py writes them",
    )
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        if not (args.keep and (folder / "dt.odgt").is_file()):
            num_people, num_dets = write_set(
                folder, args.images, args.people, args.dets, args.seed, args.crowddet_rounding
            )
            print(f"set: {args.images} images, {num_people} people, {num_dets} detections")
        else:
            print(f"set: reusing {folder}")
        runs = [crowdet_metrics(folder) for _ in range(max(args.repeat, 1))]
        mine = runs[0][0]
        t_mine, c_mine = min(r[1] for r in runs), min(r[2] for r in runs)
        print(f"crowdet eval-dets --no-coco: {t_mine:.2f} s wall, {c_mine:.2f} s CPU  {_fmt(mine)}")
        if args.reference is None:
            return 0
        ref, t_ref, c_ref = reference_metrics(folder, args.reference)
        print(
            f"reference (CrowdDet lib/evaluate): {t_ref:.2f} s wall, {c_ref:.2f} s CPU  {_fmt(ref)}"
        )
        for key in ("AP", "MR", "JI"):
            print(f"|difference| {key}: {abs(mine[key] - ref[key]):.1e}")
        print(
            f"speed ratio (reference / crowdet, whole commands): {t_ref / t_mine:.1f}x wall, "
            f"{c_ref / c_mine:.1f}x CPU"
        )
    return 0


def _fmt(m: dict[str, float]) -> str:
    return "  ".join(
        f"{k} {m[k]!r}" if math.isfinite(m[k]) else f"{k} {m[k]}" for k in ("AP", "MR", "JI")
    )


if __name__ == "__main__":
    sys.exit(main())
