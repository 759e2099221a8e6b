"""crowdet's RetinaNet-R50-FPN against torchvision's retinanet_resnet50_fpn, same weights, same
inputs: a training step (forward + backward + SGD, batch 2, 640 x 640, about 150 people per
image, fp32) and inference with decoding and NMS; prints images/s of both and the ratios.

    .venv/bin/python bench/bench_zoo_retina.py [--threads 1] [--steps 2] [--channels-last]
        [--norm frozen_bn|bn] [--clock wall|cpu] [--compile] [--profile]

--norm frozen_bn (the default) benchmarks the CrowdHuman recipe's backbone (FrozenBatchNorm2d,
stem and layer1 not trained) against torchvision's model as `retinanet_resnet50_fpn` builds it
for ImageNet weights (FrozenBatchNorm2d, trainable_backbone_layers 3: the same layers trained);
--norm bn both with BatchNorm trained on the batch and every layer trained (what
`retinanet_resnet50_fpn` builds without weights).

Both models have the same architecture and weights (torchvision's, copied by
crowdet.models.torchvision_map): one class, 9 anchors a location, IoU 0.5 / 0.4 matching,
focal loss; torchvision's box loss is L1 on deltas, crowdet's smooth L1 (beta 0.1). The class
biases are set to 0 so that scores are about 0.5 and both give NMS the same number of
candidates: torchvision its top 1,000 per level, crowdet as many from all levels (4,125 at
640 x 640); score threshold 0.05, IoU 0.5, up to 500 detections per image. torchvision's
transform (normalisation, a resize by 1) is part of its step, crowdet's input normalisation of
its own. The two models alternate step by step, so a change in machine load hits both;
each figure is the median of `--steps` timed steps after one untimed step. `--clock cpu` times
the process's CPU time instead of wall time: with --threads 1 on a machine other jobs load, it
leaves out the time the step waits for a core. --compile adds crowdet's inference compiled with
frozen weights (`crowdet detect --compile`; compiling takes minutes, outside the timing) as a
third model taking turns with the other two. --profile adds one training step of each model under
torch.profiler, split into convolutions (forward, backward) and the rest: the convolutions are the
same ATen kernels in both, so the rest bounds what crowdet can gain.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CROWDET = [
    "model.neck={name: fpn, channels: 256, levels: [3, 4, 5, 6, 7], extra_from: p5}",
    "model.head={name: retina, convs: 4, channels: 256, norm: none}",
    "model.anchors={base_scale: 4.0, octave_scales: [1.0, 1.2599, 1.5874], "
    "aspect_ratios: [0.5, 1.0, 2.0], order: ratio_major, keep: area, center_offset: 0.0}",
    "assign={name: max_iou, pos_iou: 0.5, neg_iou: 0.4, low_quality: true}",
    "loss={cls: focal, box: smooth_l1, smooth_l1_beta: 0.1, box_weight: 1.0}",
    "postprocess={score_threshold: 0.05, pre_nms_topk: 1000, nms: hard, iou_threshold: 0.5, "
    "max_dets: 500}",
    "data.size_divisor=128",
    "data.input_size=640",
]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=2, help="timed steps of each kind and model")
    p.add_argument("--size", type=int, default=640)
    p.add_argument("--people", type=int, default=150)
    p.add_argument("--channels-last", action="store_true", help="crowdet in NHWC")
    p.add_argument("--norm", choices=["frozen_bn", "bn"], default="frozen_bn")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    p.add_argument(
        "--compile", action="store_true",
        help="also crowdet's inference compiled (DenseDetector.compile_for_inference)",
    )  # fmt: skip
    p.add_argument(
        "--profile", action="store_true",
        help="then one training step of each under torch.profiler: convolution time, the rest",
    )  # fmt: skip
    return p.parse_args()


def people(n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """(n, 4) xyxy person-shaped boxes (height 2.4 x width, 20-300 px tall) inside the image."""
    h = 20 + torch.rand(n, generator=gen) * 280
    w = h / 2.4
    x1 = torch.rand(n, generator=gen) * (size - w)
    y1 = torch.rand(n, generator=gen) * (size - h)
    return torch.stack([x1, y1, x1 + w, y1 + h], dim=1)


def torchvision_model(args):
    """retinanet_resnet50_fpn; with --norm frozen_bn built as it builds itself for ImageNet
    backbone weights (without fetching them)."""
    from torchvision.models import resnet50
    from torchvision.models.detection import RetinaNet, retinanet_resnet50_fpn
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops import FrozenBatchNorm2d
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7

    kwargs = dict(
        num_classes=1, min_size=args.size, max_size=args.size, score_thresh=0.05,
        nms_thresh=0.5, detections_per_img=500, topk_candidates=1000,
    )  # fmt: skip
    if args.norm == "bn":
        return retinanet_resnet50_fpn(weights=None, weights_backbone=None, **kwargs)
    body = resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
    body.load_state_dict(calibrated_resnet50(args.size).state_dict())
    extra = LastLevelP6P7(256, 256)
    return RetinaNet(_resnet_fpn_extractor(body, 3, [2, 3, 4], extra_blocks=extra), **kwargs)


def calibrated_resnet50(size: int) -> torch.nn.Module:
    """A randomly initialised ResNet-50 whose BatchNorm statistics are those of one batch of
    noise images: frozen, they keep the activations at the scale pretrained weights give (with
    the initial 0 / 1 statistics they grow block by block until the first step diverges)."""
    from torchvision.models import resnet50

    net = resnet50(weights=None)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 1.0
    with torch.no_grad():
        net(torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1)))
    return net


def build(args):
    from crowdet.config import load_config
    from crowdet.models.build import build_detector
    from crowdet.models.torchvision_map import crowdet_state

    torch.manual_seed(0)
    tv = torchvision_model(args)
    torch.nn.init.zeros_(tv.head.classification_head.cls_logits.bias)
    # torchvision keeps its top 1,000 per level for NMS: the same number in all for crowdet
    levels = [(args.size // 2**k) ** 2 * 9 for k in range(3, 8)]
    topk = sum(min(1000, n) for n in levels)
    frozen = 2 if args.norm == "frozen_bn" else 0  # the stem and layer1, as torchvision's
    overrides = [
        f"model.backbone={{name: resnet, depth: 50, norm: {args.norm}, frozen_stages: {frozen}}}",
        *CROWDET,
        f"model.channels_last={str(args.channels_last).lower()}",
        f"postprocess.pre_nms_topk={topk}",
    ]
    ours = build_detector(load_config(None, overrides))
    ours.load_state_dict(crowdet_state(tv.state_dict()))
    return tv, ours


def inputs(args):
    """torchvision's (images 0-1 RGB, targets) and crowdet's Batch of the same two images."""
    from crowdet.structures import Batch

    gen = torch.Generator().manual_seed(0)
    s = args.size
    rgb = torch.rand(2, 3, s, s, generator=gen)
    boxes = torch.stack([people(args.people, s, gen) for _ in range(2)])
    tv_images = list(rgb)
    tv_targets = [{"boxes": b, "labels": torch.zeros(len(b), dtype=torch.int64)} for b in boxes]
    sizes = torch.tensor([[s, s], [s, s]])
    batch = Batch(
        images=rgb.flip(1) * 255, image_sizes=sizes, boxes=boxes,
        valid=torch.ones(2, args.people, dtype=torch.bool),
        ignore=torch.zeros(2, args.people, dtype=torch.bool),
        scales=torch.ones(2), orig_sizes=sizes, image_ids=["0", "1"],
    )  # fmt: skip
    return (tv_images, tv_targets), batch


CLOCK = time.perf_counter  # time.process_time with --clock cpu


def train_step(model, optim, loss_fn) -> float:
    start = CLOCK()
    losses = loss_fn()
    loss = sum(losses.values())
    optim.zero_grad()
    loss.backward()
    optim.step()
    return CLOCK() - start


def timed(fn) -> float:
    start = CLOCK()
    fn()
    return CLOCK() - start


def alternate(*fns, steps: int) -> list[float]:
    """Median seconds of each fn(), the fns run in turn after one untimed run of each."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(steps):
        for fn, t in zip(fns, times, strict=True):
            t.append(fn())
    return [statistics.median(t) for t in times]


CONV_OPS = {"aten::mkldnn_convolution": "forward", "aten::_slow_conv2d_forward": "forward",
            "aten::convolution_backward": "backward"}  # fmt: skip


def profile_steps(*named_steps) -> None:
    """One step of each (name, fn) under torch.profiler: its CPU time in convolutions forward
    and backward (self time of the ATen ops) and in everything else."""
    from torch.profiler import ProfilerActivity, profile

    print(f"{'one step':14s} {'total s':>8s} {'conv fwd':>9s} {'conv bwd':>9s} {'rest':>7s}")
    for name, fn in named_steps:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        conv = {"forward": 0.0, "backward": 0.0}
        total = 0.0
        for e in prof.key_averages():
            total += e.self_cpu_time_total / 1e6
            if e.key in CONV_OPS:
                conv[CONV_OPS[e.key]] += e.self_cpu_time_total / 1e6
        rest = total - conv["forward"] - conv["backward"]
        print(f"{name:14s} {total:8.2f} {conv['forward']:9.2f} {conv['backward']:9.2f} {rest:7.2f}")


def main() -> int:
    global CLOCK
    args = parse_args()
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    tv, ours = build(args)
    initial = [{k: v.clone() for k, v in m.state_dict().items()} for m in (tv, ours)]
    (tv_images, tv_targets), batch = inputs(args)
    tv_opt = torch.optim.SGD(tv.parameters(), lr=0.01, momentum=0.9)
    our_opt = torch.optim.SGD(ours.parameters(), lr=0.01, momentum=0.9)
    tv.train(), ours.train()
    t_ours, t_tv = alternate(
        lambda: train_step(ours, our_opt, lambda: ours.loss(batch)),
        lambda: train_step(tv, tv_opt, lambda: tv(tv_images, tv_targets)),
        steps=args.steps,
    )
    if args.profile:
        profile_steps(
            ("crowdet", lambda: train_step(ours, our_opt, lambda: ours.loss(batch))),
            ("torchvision", lambda: train_step(tv, tv_opt, lambda: tv(tv_images, tv_targets))),
        )  # fmt: skip
    tv.load_state_dict(initial[0]), ours.load_state_dict(initial[1])  # inference from the start
    tv.eval(), ours.eval()
    infer = [lambda: timed(lambda: ours.predict(batch)), lambda: timed(lambda: tv(tv_images))]
    if args.compile:  # a second copy: the eager one keeps its own row
        compiled = copy.deepcopy(ours).compile_for_inference()
        infer.append(lambda: timed(lambda: compiled.predict(batch)))
    with torch.no_grad():
        dets_ours, dets_tv = ours.predict(batch), tv(tv_images)
        if args.compile:
            start = time.perf_counter()
            compiled.predict(batch)
            print(f"compiling crowdet for inference: {time.perf_counter() - start:.0f} s")
        i_ours, i_tv, *i_compiled = alternate(*infer, steps=args.steps)
    n = len(tv_images)
    print(
        f"threads {args.threads}, batch {n}, {args.size} x {args.size}, {args.people} people, "
        f"norm {args.norm}, crowdet channels_last {args.channels_last}, {args.clock} clock"
    )
    kept = [len(d.boxes) for d in dets_ours], [len(d["boxes"]) for d in dets_tv]
    print(f"detections per image: crowdet {kept[0]}, torchvision {kept[1]}")
    print(f"{'':14s} {'crowdet':>10s} {'torchvision':>12s} {'ratio':>7s}")
    rows = [("train img/s", t_ours, t_tv), ("infer img/s", i_ours, i_tv)]
    rows += [("infer compiled", t, i_tv) for t in i_compiled]
    for name, a, b in rows:
        print(f"{name:14s} {n / a:10.3f} {n / b:12.3f} {b / a:7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
