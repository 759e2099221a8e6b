"""The peer for the demo: torchvision's RetinaNet with a ResNet-18 FPN, trained from scratch for the
same wall time on the same data, scored by the same evaluator.

    .venv/bin/python bench/bench_torchvision_retina.py [--seconds 600] \
        [--compare runs/demo/metrics.json]

Data, input size, flip/scale/HSV augmentation and batch size come from configs/demo.yaml; the
model, loss, assignment (IoU 0.5 / 0.4) and optimizer (SGD, lr 0.01, momentum 0.9, weight decay
1e-4) are torchvision's reference recipe for RetinaNet, with a linear warmup short enough for the
budget (`--warmup`, 50 steps of the ~190 that fit in 600 s). torchvision has no ignore
regions, so ignore boxes are left out of its targets (taught as background). Prints images/s and
CrowdHuman AP / MR^-2 / JI on the validation set; with --compare, the same for a crowdet run's
metrics.json beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=600, help="training wall time")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--warmup", type=int, default=50, help="linear warmup steps (about 190 steps fit in 600 s)"
    )
    p.add_argument("--compare", type=Path, help="a crowdet metrics.json to print beside it")
    return p.parse_args()


def build_model(input_size: int):
    from torchvision.models.detection import RetinaNet
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7

    backbone = resnet_fpn_backbone(
        backbone_name="resnet18",
        weights=None,
        trainable_layers=5,
        returned_layers=[2, 3, 4],
        extra_blocks=LastLevelP6P7(256, 256),
    )
    # num_classes counts the background; images keep the size the data path gives them
    return RetinaNet(
        backbone,
        num_classes=2,
        min_size=input_size * 3 // 4,
        max_size=input_size,
        score_thresh=0.05,
        nms_thresh=0.5,
        detections_per_img=500,
    )


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """BGR uint8 HWC -> RGB float CHW in [0, 1]."""
    return torch.from_numpy(image[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255


def batches(dataset, batch_size: int, seed: int):
    """Endless shuffled batches of (images, targets), ignore boxes left out."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(dataset))
        for i in range(0, len(order) - batch_size + 1, batch_size):
            samples = [dataset[int(j)] for j in order[i : i + batch_size]]
            samples = [s for s in samples if s.image is not None]
            images = [to_tensor(s.image) for s in samples]
            targets = []
            for s in samples:
                chosen, ignore = s.targets()
                boxes = torch.as_tensor(chosen[~ignore], dtype=torch.float32).reshape(-1, 4)
                targets.append(
                    {"boxes": boxes, "labels": torch.ones(len(boxes), dtype=torch.int64)}
                )
            yield images, targets


def train(model, dataset, cfg, seconds: float, warmup: int) -> tuple[int, int, float]:
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)
    model.train()
    start, steps, images = time.perf_counter(), 0, 0
    for batch_images, targets in batches(dataset, cfg.train.batch_size, cfg.train.seed):
        for group in optim.param_groups:
            group["lr"] = 0.01 * min(1.0, 0.001 + steps / warmup)
        losses = model(batch_images, targets)
        loss = sum(losses.values())
        optim.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        optim.step()
        steps, images = steps + 1, images + len(batch_images)
        if steps % 20 == 0:
            elapsed = time.perf_counter() - start
            print(f"step {steps} loss {loss.item():.3f} {images / elapsed:.1f} img/s", flush=True)
        if time.perf_counter() - start >= seconds:
            break
    return steps, images, time.perf_counter() - start


@torch.no_grad()
def predict(model, dataset) -> dict:
    model.eval()
    dets = {}
    for i in range(len(dataset)):
        s = dataset[i]
        if s.image is None:
            continue
        (out,) = model([to_tensor(s.image)])
        dets[s.image_id] = (out["boxes"].numpy() / s.scale, out["scores"].numpy())
    return dets


def main() -> int:
    args = parse_args()
    from crowdet.config import load_config
    from crowdet.engine import data as D
    from crowdet.evaluate import evaluate

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_config(REPO / "configs" / "demo.yaml", [])
    D.ensure_dataset(cfg)
    train_set = D.build_dataset(cfg, D.load_records(cfg, "train"), train=True)
    val_records = D.load_records(cfg, "val")
    val_set = D.build_dataset(cfg, val_records, train=False)
    model = build_model(cfg.data.input_size)
    steps, images, elapsed = train(model, train_set, cfg, args.seconds, args.warmup)
    result = evaluate(val_records, predict(model, val_set), cfg.data.box, coco=False)
    rows = [("torchvision RetinaNet R18-FPN", result.AP, result.MR, result.JI, images / elapsed)]
    if args.compare:
        m = json.loads(args.compare.read_text())
        rows.append(
            (f"crowdet ({args.compare})", m["AP"], m["MR"], m["JI"], m.get("train_images_per_s"))
        )
    print(f"torchvision: {steps} steps, {images} images in {elapsed:.0f} s")
    print(f"{'model':44s} {'AP':>6s} {'MR^-2':>6s} {'JI':>6s} {'img/s':>6s}")
    for name, ap, mr, ji, ips in rows:
        print(f"{name:44s} {ap:6.3f} {mr:6.3f} {ji:6.3f} {ips or float('nan'):6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
