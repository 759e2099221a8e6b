"""Training-step speed of a config's model under the settings that depend on the CPU: memory
layout (NCHW / NHWC), autocast (fp32 / bf16), `torch.compile`, and thread count.

    .venv/bin/python bench/bench_step.py [--config configs/demo.yaml] [--rounds 6] [--steps 5]
        [--compile] [--threads 1 2]
    .venv/bin/python bench/bench_step.py --variant max_iou --variant "atss:assign.name=atss" ...

The same real batches (the config's training set, augmented) go through forward, loss, backward
and an optimizer step for every variant; the variants take turns, `--steps` steps each per round,
so a machine that slows down during the run slows every variant alike. Prints the median step
time of each variant and its ratio to the first (NCHW fp32), the CPU's ISA and whether it runs
bf16 natively. Data loading is timed apart (read + augment + collate of one batch). With
`--variant`, the variants are recipes instead: the config with each one's overrides (fp32, the
config's layout), e.g. the step cost of each assigner.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import logging
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from timing import config_parser  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = config_parser(__doc__)
    p.add_argument("--rounds", type=int, default=6, help="turns of every variant")
    p.add_argument("--steps", type=int, default=5, help="steps of a variant per turn")
    p.add_argument("--compile", action="store_true", help="also time torch.compile variants")
    p.add_argument("--threads", type=int, nargs="*", default=[], help="thread counts to compare")
    p.add_argument(
        "--variant", action="append", default=[], metavar="NAME:key=value ...",
        help="compare recipes instead of CPU settings: the config with these overrides each",
    )  # fmt: skip
    return p.parse_args()


def batches(cfg, n: int):
    """n collated training batches of the config's data, and the seconds one batch takes."""
    from crowdet.data.collate import collate
    from crowdet.engine import data as D

    D.ensure_dataset(cfg)
    dataset = D.build_dataset(cfg, D.load_records(cfg, "train"), train=True)
    bs = cfg.train.batch_size
    start = time.perf_counter()
    out = [
        collate([dataset[i * bs + j] for j in range(bs)], cfg.data.size_divisor) for i in range(n)
    ]
    return out, (time.perf_counter() - start) / n


class Variant:
    """One setting: its own copy of the model and optimizer, stepped on the shared batches."""

    def __init__(self, cfg, name: str, channels_last: bool, amp: str, compile_: bool, threads):
        import torch

        from crowdet.engine.optim import build_optimizer
        from crowdet.models.build import build_detector

        torch.manual_seed(0)
        cfg = copy.deepcopy(cfg)
        cfg.model.channels_last = channels_last
        self.name, self.amp, self.threads = name, amp, threads
        self.model = build_detector(cfg)
        self.optimizer = build_optimizer(self.model, cfg.train, cfg.train.lr)
        if compile_:
            self.model.compile()
        self.times: list[float] = []

    def step(self, batch) -> float:
        import torch

        from crowdet.engine import amp

        if self.threads:
            torch.set_num_threads(self.threads)
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        with amp.autocast(self.amp, torch.device("cpu")):
            losses = self.model.loss(batch)
        sum(losses.values()).backward()
        self.optimizer.step()
        return time.perf_counter() - start


def recipe_variants(args) -> list[Variant]:
    """--variant NAME:key=value ...: the config with each one's overrides, its layout, fp32."""
    from crowdet.config import load_config

    out = []
    for spec in args.variant:
        name, _, overrides = spec.partition(":")
        cfg = load_config(args.config, [*args.overrides, *overrides.split()])
        out.append(Variant(cfg, name, cfg.model.channels_last, "off", False, 0))
    return out


def variants(cfg, args) -> list[Variant]:
    from crowdet.engine.amp import cpu_bf16_supported

    if args.variant:
        return recipe_variants(args)
    amps = ["off", "bf16"] if cpu_bf16_supported() else ["off"]
    compiles = [False, True] if args.compile else [False]
    threads = args.threads or [0]
    out = []
    for amp, layout, comp, th in itertools.product(amps, ["NCHW", "NHWC"], compiles, threads):
        name = f"{layout} {'fp32' if amp == 'off' else amp}" + (" compiled" if comp else "")
        name += f" {th} threads" if th else ""
        out.append(Variant(cfg, name, layout == "NHWC", amp, comp, th))
    return out


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch

    from crowdet.config import load_config
    from crowdet.engine.amp import cpu_bf16_supported

    cfg = load_config(args.config, args.overrides)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    data, load_s = batches(cfg, args.steps)
    runs = variants(cfg, args)
    for v in runs:  # warm-up (and compilation) outside the timing
        for b in data[:2]:
            v.step(b)
    for _ in range(args.rounds):
        for v in runs:
            v.times += [v.step(b) for b in data]
    base = statistics.median(runs[0].times)
    print(f"CPU ISA {torch.backends.cpu.get_cpu_capability()}, native bf16: "
          f"{cpu_bf16_supported()}, torch threads {torch.get_num_threads()}")  # fmt: skip
    print(f"config {args.config.name}: batch {cfg.train.batch_size}, input {cfg.data.input_size}px")
    print(f"loading one batch (read, augment, collate): {load_s:.3f} s")
    for v in runs:
        med = statistics.median(v.times)
        print(f"{v.name:28s} step {med:.3f} s   {base / med:.2f}x the speed of {runs[0].name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
