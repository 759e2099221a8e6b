"""Time Gaussian Soft-NMS on crowded candidates against OpenCV's sequential C++ Soft-NMS run
image by image, with hard NMS (torchvision.ops.batched_nms), Set NMS and Adaptive NMS beside it,
all as ratios to crowdet's Soft-NMS time in the same run.

    python bench/bench_nms.py [--images 16] [--people 25] [--per-person 60] [--seed 0]

Cases: one crowded image of 300, 2,000 and 5,000 candidates, and a batch of `--images` images
of `--people` x `--per-person` candidates (about 1,500 per image at the defaults, as the demo
config's two flip passes give). The candidates imitate a dense detector's on a crowd: jittered
boxes around each person, random scores. OpenCV rounds boxes to integer pixels, so it sees the
integer boxes and crowdet the same integer boxes; the kept sets are compared. Set NMS pairs the
candidates two by two as one prior's predictions; Adaptive NMS gets random densities in
[0, 0.8].
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import torch
from timing import best_of
from torchvision.ops import batched_nms

from crowdet.postprocess import batched_adaptive_nms, batched_soft_nms
from crowdet.postprocess.suppress import batched_set_nms


def crowd_batch(images: int, people: int, per_person: int, seed: int):
    """boxes (N, 4) integer-valued float32 xyxy, scores (N,), image index (N,)."""
    rng = np.random.default_rng(seed)
    n = images * people * per_person
    img = np.repeat(np.arange(images), people * per_person)
    centre = rng.uniform(20, 300, (images * people, 2)).repeat(per_person, 0)
    size = rng.uniform(12, 90, (images * people, 1)).repeat(per_person, 0) * [0.41, 1.0]
    xy = centre + rng.normal(0, 0.15, (n, 2)) * size
    wh = size * rng.uniform(0.8, 1.2, (n, 2))
    boxes = np.round(np.concatenate([xy - wh / 2, xy + wh / 2], 1))
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    scores = rng.uniform(0.05, 1.0, n)
    return (
        torch.tensor(boxes, dtype=torch.float32),
        torch.tensor(scores, dtype=torch.float32),
        torch.tensor(img),
    )


def opencv_per_image(boxes, scores, img, sigma, threshold):
    kept = []
    for i in torch.unique(img).tolist():
        idx = torch.nonzero(img == i).flatten()
        b = boxes[idx]
        rects = [(int(x1), int(y1), int(x2 - x1), int(y2 - y1)) for x1, y1, x2, y2 in b.tolist()]
        _, keep = cv2.dnn.softNMSBoxes(
            rects, scores[idx].tolist(), threshold, 0.3, 0, sigma,
            cv2.dnn.SOFT_NMSMETHOD_SOFTNMS_GAUSSIAN,
        )  # fmt: skip
        kept += idx[np.asarray(keep, dtype=np.int64).ravel()].tolist()
    return kept


def run_case(name, boxes, scores, img, repeat):
    """Time every suppression on one case; True when crowdet and OpenCV keep the same boxes."""
    sigma, threshold = 0.5, 0.001
    (keep, _), t_soft = best_of(
        lambda: batched_soft_nms(boxes, scores, img, sigma=sigma, score_threshold=threshold),
        repeat,
    )
    cv_keep, t_cv = best_of(lambda: opencv_per_image(boxes, scores, img, sigma, threshold), repeat)
    _, t_hard = best_of(lambda: batched_nms(boxes, scores, img, 0.5), repeat)
    sets = torch.arange(len(boxes)) // 2
    _, t_set = best_of(lambda: batched_set_nms(boxes, scores, sets, img, 0.5), repeat)
    density = torch.rand(len(boxes), generator=torch.Generator().manual_seed(0)) * 0.8
    _, t_adapt = best_of(lambda: batched_adaptive_nms(boxes, scores, density, img, 0.5), repeat)
    same = sorted(keep.tolist()) == sorted(cv_keep)
    print(
        f"{name:<24} {len(boxes):>6} {t_soft * 1e3:9.1f} ms {t_cv / t_soft:7.2f}x "
        f"{t_hard / t_soft:7.2f}x {t_set / t_soft:7.2f}x {t_adapt / t_soft:7.2f}x  {same}"
    )
    return same


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--people", type=int, default=25)
    p.add_argument("--per-person", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (OpenCV's is one)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    warm = crowd_batch(1, 4, 10, args.seed)  # compiles the Soft-NMS kernel outside the timing
    batched_soft_nms(*warm)
    cases = [
        ("one image, 300", crowd_batch(1, 10, 30, args.seed)),
        ("one image, 2,000", crowd_batch(1, 40, 50, args.seed)),
        ("one image, 5,000", crowd_batch(1, 100, 50, args.seed)),
        (
            f"{args.images} images",
            crowd_batch(args.images, args.people, args.per_person, args.seed),
        ),
    ]
    print("Soft-NMS time of crowdet, and each other time as a multiple of it (> 1: slower)")
    print(f"{'case':<24} {'boxes':>6} {'crowdet':>12} {'OpenCV':>8} {'hard':>8} {'Set':>8} "
          f"{'Adaptive':>8}  same kept as OpenCV")  # fmt: skip
    same = [run_case(name, *case, args.repeat) for name, case in cases]
    return 0 if all(same) else 1


if __name__ == "__main__":
    raise SystemExit(main())
