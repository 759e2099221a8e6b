"""`crowdet info CONFIG [key=value ...]`: parameters, FLOPs and priors per image of a model."""

from __future__ import annotations

import argparse

HELP = "show a model's parameters, FLOPs and priors per image"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")


def run(args) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from crowdet.config import load_config
    from crowdet.models.build import build_detector

    cfg = load_config(args.config, args.overrides)
    model = build_detector(cfg).eval()
    size = cfg.data.input_size
    stride = cfg.data.size_divisor
    h = -(-round(size * 0.75) // stride) * stride  # a 4:3 image letterboxed to input_size
    x = torch.zeros(1, 3, h, size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        _, priors = model(x)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {cfg.model.backbone.name} + {cfg.model.neck.name} + {cfg.model.head.name}")
    for name in ("backbone", "neck", "head"):
        n = sum(p.numel() for p in getattr(model, name).parameters())
        print(f"  {name:9s} {n / 1e6:8.3f} M parameters")
    print(f"parameters: {params / 1e6:.3f} M")
    print(f"input {size}x{h} (W x H): {counter.get_total_flops() / 2e9:.3f} GMACs per image")
    print(f"priors per image: {len(priors.boxes)}")
    return 0
