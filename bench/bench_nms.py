"""Time batched Soft-NMS on a validation-sized batch of crowded candidates against OpenCV's
sequential C++ Soft-NMS run image by image, and against hard NMS (torchvision.ops.batched_nms).

    python bench/bench_nms.py [--images 16] [--people 25] [--per-person 60] [--seed 0]

The candidates imitate a dense detector's on a crowd: per image, `--people` people and
`--per-person` jittered boxes around each, random scores (about 1,500 per image at the defaults,
as the demo config's two flip passes give). OpenCV rounds boxes to integer pixels, so it sees
the integer boxes and crowdet the same integer boxes; the kept sets are compared.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import torch
from timing import best_of
from torchvision.ops import batched_nms

from crowdet.postprocess import batched_soft_nms


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--people", type=int, default=25)
    p.add_argument("--per-person", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    boxes, scores, img = crowd_batch(args.images, args.people, args.per_person, args.seed)
    sigma, threshold = 0.5, 0.001
    (keep, _), t_soft = best_of(
        lambda: batched_soft_nms(boxes, scores, img, sigma=sigma, score_threshold=threshold),
        args.repeat,
    )
    cv_keep, t_cv = best_of(lambda: opencv_per_image(boxes, scores, img, sigma, threshold), 1)
    _, t_hard = best_of(lambda: batched_nms(boxes, scores, img, 0.5), args.repeat)
    same = sorted(keep.tolist()) == sorted(cv_keep)
    print(f"{len(boxes)} candidates in {args.images} images, {len(keep)} kept by Soft-NMS")
    print(f"crowdet batched Soft-NMS   {t_soft:8.3f} s")
    print(f"OpenCV Soft-NMS per image  {t_cv:8.3f} s  ({t_cv / t_soft:.2f}x crowdet's time)")
    print(f"hard NMS (torchvision)     {t_hard:8.3f} s  ({t_hard / t_soft:.2f}x crowdet's time)")
    print(f"same kept boxes as OpenCV: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
