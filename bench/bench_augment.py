"""Images per second per data worker of the strong training augmentation at 640 px: crowdet's
letterbox + mosaic + random affine + flip + HSV against the same steps in torchvision.transforms.v2
(resize, RandomAffine, RandomHorizontalFlip, ColorJitter, boxes as tv_tensors.BoundingBoxes for
the full, visible and head boxes, then clamped and sanitised; v2 has no mosaic, so it does less).

    python bench/bench_augment.py [--root /tmp/ch] [--images 40] [--samples 200] [--size 640]

One process, one thread each (OpenCV and torch), as a DataLoader worker runs; the images are
decoded once beforehand for both (data.cache), so only the transforms are timed. Makes a small
`crowdhuman`-preset synthetic set under --root when it is missing. Prints both rates and the ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=Path("/tmp/crowdet-bench-augment"))
    p.add_argument("--images", type=int, default=40, help="images in the set made under --root")
    p.add_argument("--samples", type=int, default=200, help="augmented samples timed per side")
    p.add_argument("--size", type=int, default=640, help="letterbox size (longer side)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def records(root: Path, images: int):
    from crowdet.data.odgt import read_odgt

    ann = root / "annotation_train.odgt"
    if not ann.is_file():
        from crowdet.data.synth import generate_dataset

        generate_dataset(root, images, 0, preset="crowdhuman", seed=0)
    return read_odgt(ann, images_dir=root / "Images")


def crowdet_pipeline(source, size: int):
    """crowdet's: letterbox, mosaic (always), random affine (always), flip, HSV."""
    from crowdet.data.augment import Mosaic, RandomAffine
    from crowdet.data.pipeline import Letterbox, train_transforms

    resize = Letterbox(size, fast=True)  # as build_dataset makes it with strong augmentation
    strong = [Mosaic(source, [resize], 1.0, 0.25), RandomAffine(1.0, (0.5, 1.5), 0.1, 5.0, 2.0)]
    return train_transforms(size, 0.5, hsv=(0.015, 0.7, 0.4), resize=resize, strong=strong)


def time_crowdet(source, size: int, samples: int, seed: int) -> float:
    from crowdet.data.pipeline import run_transforms
    from crowdet.data.sample import choose_targets

    transforms = crowdet_pipeline(source, size)
    start = time.perf_counter()
    for i in range(samples):
        rng = np.random.default_rng((seed, 0, i))
        s = run_transforms(transforms, source.load(i % len(source)), rng)
        choose_targets(s, "full", 2.0)
    return samples / (time.perf_counter() - start)


def tv_pipeline(size: int):
    """torchvision's: the same resize, affine, flip and a colour jitter of about the HSV gains."""
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.Resize(size=None, max_size=size, antialias=True),
            v2.RandomAffine(degrees=5.0, translate=(0.1, 0.1), scale=(0.5, 1.5), shear=2.0),
            v2.RandomHorizontalFlip(0.5),
            v2.ColorJitter(brightness=0.4, saturation=0.7, hue=0.015),
            v2.ClampBoundingBoxes(),
            v2.SanitizeBoundingBoxes(min_size=2.0, labels_getter=None),
        ]
    )


def time_torchvision(source, size: int, samples: int, seed: int) -> float:
    from torchvision import tv_tensors

    pipeline = tv_pipeline(size)
    torch.manual_seed(seed)
    start = time.perf_counter()
    for i in range(samples):
        s = source.load(i % len(source))
        h, w = s.image.shape[:2]
        image = tv_tensors.Image(torch.from_numpy(s.image[:, :, ::-1].copy()).permute(2, 0, 1))
        boxes = {
            k: tv_tensors.BoundingBoxes(np.nan_to_num(b), format="XYXY", canvas_size=(h, w))
            for k, b in s.boxes.items()
        }
        pipeline(image, boxes)
    return samples / (time.perf_counter() - start)


def main() -> int:
    args = parse_args()
    from crowdet.data.cache import ImageCache
    from crowdet.data.dataset import SampleSource

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    recs = records(args.root, args.images)
    source = SampleSource(recs, cache=ImageCache(8 * 2**30))
    for i in range(len(source)):  # decode once: only the transforms are timed
        source.load(i)
    people = np.mean([int((~r.ignore).sum()) for r in recs])
    print(f"{len(recs)} crowdhuman-preset images, {people:.0f} people each on average")
    time_crowdet(source, args.size, 10, args.seed)  # warm-up
    time_torchvision(source, args.size, 10, args.seed)
    ours = time_crowdet(source, args.size, args.samples, args.seed)
    theirs = time_torchvision(source, args.size, args.samples, args.seed)
    print(f"crowdet (letterbox + mosaic + affine + flip + HSV): {ours:.1f} images/s per worker")
    print(f"torchvision v2 (resize + affine + flip + colour jitter): {theirs:.1f} images/s")
    print(f"ratio crowdet / torchvision: {ours / theirs:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
