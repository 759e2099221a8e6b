"""Assignment + loss + backward: crowdet against torchvision's RetinaNet, at crowd scale.

    .venv/bin/python bench/bench_assign_speed.py [--batch 8] [--people 20,150,500,1000]
        [--extra atss,ota,freeanchor] [--threads 1]

Inputs shared by both: RetinaNet priors (P3-P7, 9 per place: 3 octave scales x 3 aspect
ratios, about 201k per 800 x 1344 image), random head outputs (B, A, 1) and (B, A, 4) as leaf
tensors, and crowds of people (bench/assign_scenes.py; torchvision, which has no ignore
regions, gets the people only). torchvision: per image box_iou + Matcher(0.5, 0.4, low-quality
matches), then RetinaNetHead.compute_loss (sigmoid focal + L1 on the deltas). crowdet: DenseLoss
with the max-IoU assigner (0.5 / 0.4, low-quality matches, ignore regions), focal +
smooth-L1 (beta 1e-6: L1) on the deltas. Each is timed once (after a small warm-up); the ratio
torchvision / crowdet is printed per crowd size. --extra times other crowdet assigners too.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial

import torch
from timing import REPO, best_of

sys.path.insert(0, str(REPO))

from assign_scenes import HEIGHT, WIDTH, crowd  # noqa: E402

from crowdet.models.anchors import AnchorGenerator  # noqa: E402
from crowdet.models.coders import DeltaCoder  # noqa: E402
from crowdet.structures import Batch, HeadOutput  # noqa: E402

STRIDES = [8, 16, 32, 64, 128]


def priors():
    gen = AnchorGenerator(STRIDES, 4.0, [1.0, 2 ** (1 / 3), 2 ** (2 / 3)], [0.5, 1.0, 2.0])
    return gen([(HEIGHT // s, WIDTH // s) for s in STRIDES])


def head_outputs(num_images: int, num_priors: int):
    g = torch.Generator().manual_seed(1)
    cls = (torch.randn(num_images, num_priors, 1, generator=g) - 3).requires_grad_()
    reg = (torch.randn(num_images, num_priors, 4, generator=g) * 0.1).requires_grad_()
    return cls, reg


def crowdet_loss(name: str):
    from crowdet.config import load_config
    from crowdet.losses.dense import DenseLoss
    from crowdet.models.build import build_assigner, build_loss

    cfg = load_config(REPO / "configs" / "tiny.yaml", [f"assign.name={name}"])
    if name == "freeanchor":
        return build_loss(cfg)
    return DenseLoss(build_assigner(cfg.assign), box="smooth_l1", box_weight=1.0,
                     smooth_l1_beta=1e-6)  # fmt: skip


def run_crowdet(loss, pri, batch, cls, reg) -> float:
    cls.grad = reg.grad = None
    out = loss(HeadOutput(cls, reg), pri, batch, DeltaCoder())
    total = sum(out.values())
    total.backward()
    return float(total.detach())


def run_torchvision(head, matcher, anchors, boxes, people, cls, reg) -> float:
    from torchvision.ops import box_iou

    cls.grad = reg.grad = None
    targets, matched = [], []
    for b in range(len(boxes)):
        gt = boxes[b][people[b]]
        targets.append({"boxes": gt, "labels": torch.zeros(len(gt), dtype=torch.long)})
        matched.append(matcher(box_iou(gt, anchors)))
    out = head.compute_loss(targets, {"cls_logits": cls, "bbox_regression": reg},
                            [anchors] * len(boxes), matched)  # fmt: skip
    total = sum(out.values())
    total.backward()
    return float(total.detach())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--people", default="20,150,500,1000")
    p.add_argument("--extra", default="", help="other crowdet assigners to time, comma-separated")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--skip-torchvision", action="store_true", help="time crowdet only")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    from torchvision.models.detection._utils import Matcher
    from torchvision.models.detection.retinanet import RetinaNetHead

    pri = priors()
    head = RetinaNetHead(256, 9, num_classes=1)
    matcher = Matcher(0.5, 0.4, allow_low_quality_matches=True)
    cls, reg = head_outputs(a.batch, len(pri.boxes))
    extra = [n for n in a.extra.split(",") if n]
    losses = {n: crowdet_loss(n) for n in ["max_iou", *extra]}
    print(f"{len(pri.boxes)} priors per image, batch {a.batch}, threads {a.threads}")
    print(f"{'people':>6} {'crowdet':>9} {'torchvision':>12} {'ratio':>7}"
          + "".join(f" {n:>12}" for n in extra))  # fmt: skip
    for i, people in enumerate(int(x) for x in a.people.split(",")):
        boxes, valid, ignore = crowd(a.batch, people, seed=i)
        sizes = torch.tensor([[HEIGHT, WIDTH]] * a.batch)
        batch = Batch(torch.zeros(a.batch, 3, 1, 1, dtype=torch.uint8), sizes, boxes, valid,
                      ignore, torch.ones(a.batch), sizes)  # fmt: skip
        if i == 0:  # warm-up
            run_crowdet(losses["max_iou"], pri, batch, cls, reg)
        ours = best_of(partial(run_crowdet, losses["max_iou"], pri, batch, cls, reg))[1]
        tv = partial(run_torchvision, head, matcher, pri.boxes, boxes, valid & ~ignore, cls, reg)
        theirs = float("nan") if a.skip_torchvision else best_of(tv)[1]
        others = [best_of(partial(run_crowdet, losses[n], pri, batch, cls, reg))[1] for n in extra]
        print(f"{people:>6} {ours:>8.2f}s {theirs:>11.2f}s {theirs / ours:>6.1f}x"
              + "".join(f" {t:>11.2f}s" for t in others), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
