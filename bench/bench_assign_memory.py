"""Peak memory of one training step with 1,000 people per image against 20, per assigner.

    .venv/bin/python bench/bench_assign_memory.py [--assigners max_iou,atss,ota,freeanchor]

One step (forward, loss, backward, SGD update) of a batch of 2 images at 800 x 1344 with the
model of bench/assign_scenes.py, each run in its own process; the peak resident memory of that
process (getrusage ru_maxrss, what `/usr/bin/time -v` reports as the maximum resident set size)
is printed for 20 and 1,000 people per image, and the difference. The target: < 1 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from timing import REPO

ALL = ["max_iou", "atss", "simota", "ota", "freeanchor"]


def one_step(assign: str, people: int, threads: int) -> dict:
    """Run in a child process: one training step; its peak RSS in MiB and the step time."""
    import torch
    from assign_scenes import batch_of, model_config

    from crowdet.models.build import build_detector

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg, source = model_config(assign)
    model = build_detector(cfg).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    batch = batch_of(2, people)
    start = time.perf_counter()
    losses = model.loss(batch)
    sum(losses.values()).backward()
    opt.step()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_mib": peak, "seconds": seconds, "model": source,
            "loss": float(sum(v.detach() for v in losses.values()))}  # fmt: skip


def measure(assign: str, people: int, threads: int) -> dict:
    code = (
        "import json, sys; sys.path[:0] = [sys.argv[1], sys.argv[2]];"
        "from bench_assign_memory import one_step;"
        "print(json.dumps(one_step(sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))))"
    )
    args = [sys.executable, "-c", code, str(REPO / "bench"), str(REPO), assign, str(people),
            str(threads)]  # fmt: skip
    out = subprocess.run(args, capture_output=True, text=True, cwd=REPO)
    if out.returncode:
        raise SystemExit(f"{assign} with {people} people failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def available(names: list[str]) -> list[str]:
    sys.path.insert(0, str(REPO))
    from crowdet.models.build import ASSIGNERS

    return [n for n in names if n in ASSIGNERS]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--assigners", default=",".join(ALL), help="comma-separated assign.name")
    p.add_argument("--people", default="20,1000", help="the two crowd sizes compared")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    few, many = (int(x) for x in a.people.split(","))
    print(f"{'assigner':<12} {'peak ' + str(few):>10} {'peak ' + str(many):>11} {'diff':>8}"
          f" {'step ' + str(few):>9} {'step ' + str(many):>10}")  # fmt: skip
    for name in available(a.assigners.split(",")):
        low, high = measure(name, few, a.threads), measure(name, many, a.threads)
        diff = high["peak_mib"] - low["peak_mib"]
        verdict = "ok" if diff < 1024 else "OVER 1 GB"
        peaks = f"{low['peak_mib']:>8.0f}MB {high['peak_mib']:>9.0f}MB {diff:>6.0f}MB"
        times = f"{low['seconds']:>8.1f}s {high['seconds']:>9.1f}s"
        print(f"{name:<12} {peaks} {times}  {verdict}", flush=True)
    print(f"model: {low['model']}; batch 2 at 800 x 1344; threads {a.threads}")


if __name__ == "__main__":
    main()
