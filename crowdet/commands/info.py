"""`crowdet info CONFIG [key=value ...]`: parameters, FLOPs and priors per image of a model.

The model is built without its pretrained weights (nothing is downloaded); FLOPs are counted by
torch.utils.flop_counter.FlopCounterMode (a multiply-add is 2 FLOPs) for one 4:3 image at the
config's input size: letterboxed to data.input_size, or with keep-ratio resizing, shorter side
data.min_size and longer side at most data.max_size; padded to data.size_divisor.
"""

from __future__ import annotations

import argparse

HELP = "show a model's parameters, FLOPs and priors per image"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")


def input_shape(data) -> tuple[int, int]:
    """(H, W) of a 4:3 landscape image as the config resizes and pads it."""
    if getattr(data, "resize", None) == "keep_ratio":
        h = data.min_size
        w = min(round(h * 4 / 3), data.max_size)
        h = min(h, round(w * 3 / 4))
    else:
        w, h = data.input_size, round(data.input_size * 0.75)
    div = data.size_divisor
    return -(-h // div) * div, -(-w // div) * div


def count_flops(model, x) -> int:
    """FLOPs of one forward pass of `model` on `x` (no gradients)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


def parameter_counts(model) -> dict[str, int]:
    """Parameters of the backbone, neck, head and in all."""
    counts = {k: sum(p.numel() for p in getattr(model, k).parameters()) for k in PARTS}
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts


PARTS = ("backbone", "neck", "head")


def run(args) -> int:
    import torch

    from crowdet.config import load_config
    from crowdet.models.build import build_detector

    cfg = load_config(args.config, args.overrides)
    model = build_detector(cfg).eval()
    h, w = input_shape(cfg.data)
    x = torch.zeros(1, 3, h, w)
    flops = count_flops(model, x)
    with torch.no_grad():
        _, priors = model(x)
    counts = parameter_counts(model)
    print(f"model: {cfg.model.backbone.name} + {cfg.model.neck.name} + {cfg.model.head.name}")
    for name in PARTS:
        print(f"  {name:9s} {counts[name] / 1e6:8.3f} M parameters")
    print(f"parameters: {counts['total'] / 1e6:.3f} M ({counts['total']:,})")
    print(f"input {w}x{h} (W x H): {flops / 1e9:.3f} GFLOPs ({flops / 2e9:.3f} GMACs) per image")
    print(f"priors per image: {len(priors.boxes)}")
    return 0
