"""Time the evaluator's AP + MR^-2 + JI on a CrowdHuman-val-sized set against the slow literal
reference of the tests (tests/evaluate/reference_crowdhuman.py).

    python bench/bench_eval.py [--images 4370] [--reference-images 200] [--seed 0] [--coco]

The set is random (tests/evaluate/eval_scenes.py): about 23 people and 100 detections per image
(noisy copies of the GT, duplicates and false positives, random scores) and ignore regions in
half of the images. The reference runs on the first `--reference-images` images only and its
time is extrapolated linearly to the whole set (said so in the output); both are also compared
on that subset.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "evaluate"))

from eval_scenes import random_set  # noqa: E402
from reference_crowdhuman import reference_metrics  # noqa: E402
from timing import best_of  # noqa: E402

from crowdet.evaluate import evaluate  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=4370, help="images in the set")
    p.add_argument("--reference-images", type=int, default=200, help="images the reference runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--coco", action="store_true", help="also time the COCO metrics")
    args = p.parse_args(argv)

    gt, dets = random_set(args.images, seed=args.seed, people=23, dets=100)
    num_dets = sum(len(s) for _, s in dets.values())
    print(
        f"set: {len(gt)} images, {sum(r.num_people for r in gt)} people, "
        f"{sum(int(r.ignore.sum()) for r in gt)} ignore regions, {num_dets} detections"
    )  # noqa: E501

    fast, t_fast = best_of(lambda: evaluate(gt, dets, coco=False), repeat=3)
    print(
        f"crowdet AP+MR+JI: {t_fast:.2f} s (best of 3)  "
        f"AP {100 * fast.AP:.2f}  MR^-2 {100 * fast.MR:.2f}  JI {100 * fast.JI:.2f}"
    )
    if args.coco:
        from crowdet.evaluate.coco import coco_metrics

        coco, t_coco = best_of(lambda: coco_metrics(gt, dets))
        print(f"COCO metrics (faster-coco-eval): {t_coco:.2f} s  AP {100 * coco['AP']:.2f}")

    n = min(args.reference_images, len(gt))
    sub_gt = gt[:n]
    sub_dets = {r.image_id: dets[r.image_id] for r in sub_gt if r.image_id in dets}
    ref, t_ref = best_of(lambda: reference_metrics(sub_gt, sub_dets))
    mine, t_sub = best_of(lambda: evaluate(sub_gt, sub_dets, coco=False))
    t_ref_all = t_ref * len(gt) / n
    print(
        f"reference on the first {n} images: {t_ref:.2f} s "
        f"(crowdet on the same: {t_sub:.3f} s); extrapolated to {len(gt)} images: "
        f"{t_ref_all:.1f} s"
    )
    diff = max(abs(ref[k] - getattr(mine, k)) for k in ("AP", "MR", "JI"))
    print(f"largest |difference| of AP, MR, JI on the subset: {diff:.1e}")
    print(f"speed-up: {t_ref_all / t_fast:.1f}x (extrapolated reference / crowdet)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
