"""Run outputs: one log line per interval, metrics.jsonl, results.csv, TensorBoard scalars and
prediction pictures. Every writer is a no-op when the run folder is None (DDP ranks other than 0).
"""

from __future__ import annotations

import csv
import json
import logging
import resource
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from crowdet.data.atomic import atomic_open, atomic_write_text

log = logging.getLogger("crowdet.train")

CSV_FIELDS = ["epoch", "iter", "loss", "cls", "box", "AP", "MR", "JI", "coco_AP", "lr"]


def format_eta(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this process: CUDA allocations on `device`, else the peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def prediction_pictures(
    records, dets: dict, box_kind: str, num: int, input_size: int | None = None
) -> list[np.ndarray]:
    """Ground truth beside detections for the first `num` records that have detections (BGR),
    drawn on the image letterbox-scaled to `input_size` (the network input; None: full size),
    so a huge validation image costs its decode only, not pictures at its own size."""
    from crowdet.data.images import read_image
    from crowdet.data.transforms import letterbox_scale, resize
    from crowdet.visualize import prediction_panel

    panels = []
    for rec in [r for r in records if r.image_id in dets][:num]:
        boxes, scores = dets[rec.image_id]
        gt = rec.boxes(box_kind)
        keep = np.isfinite(gt).all(1)
        image = read_image(rec.image_path)
        scale = letterbox_scale(*image.shape[:2], input_size) if input_size else 1.0
        image, gt_boxes = resize(image, gt[keep], scale)
        ignore = rec.ignore_for(box_kind)[keep]
        panels.append(prediction_panel(image, gt_boxes, ignore, boxes * scale, scores))
    return panels


def _logged_iter(line: str) -> float:
    """The iteration of a metrics.jsonl line; a torn line (killed mid-write) counts as after."""
    try:
        return json.loads(line)["iter"]
    except (ValueError, KeyError, TypeError):
        return float("inf")


class RunLogger:
    """Writes the run folder's logs; a no-op (log lines aside) when run_dir is None."""

    def __init__(self, run_dir: Path | None, tensorboard: bool = True):
        self.run_dir = run_dir
        self.tb = None
        if run_dir is not None and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(log_dir=str(run_dir))
            except ImportError:  # tensorboard missing: logs still go to csv/jsonl
                log.warning("tensorboard is not installed; no event files written")

    def step(self, it: int, max_iters: int, losses: dict, lr: float, timing: dict) -> None:
        """timing: data_time / step_time (mean seconds per step over the interval), ips
        (images/s), eta (seconds), mem (MiB)."""
        if self.run_dir is None:
            return
        terms = " ".join(f"{k} {v:.3f}" for k, v in losses.items() if k != "loss")
        log.info(
            "iter %d/%d loss %.3f (%s) lr %.2e data %.3fs iter %.3fs %.1f img/s mem %.0fM eta %s",
            it, max_iters, losses["loss"], terms, lr, timing["data_time"], timing["step_time"],
            timing["ips"], timing["mem"], format_eta(timing["eta"]),
        )  # fmt: skip
        self._jsonl({"type": "train", "iter": it, **losses, "lr": lr, **timing})
        if self.tb is not None:
            for k, v in losses.items():
                self.tb.add_scalar(f"train/{k}", v, it)
            self.tb.add_scalar("train/lr", lr, it)
            self.tb.add_scalar("train/images_per_s", timing["ips"], it)
            self.tb.add_scalar("train/data_time", timing["data_time"], it)

    def evaluation(self, epoch: int, it: int, losses: dict, metrics: dict, lr: float) -> None:
        if self.run_dir is None:
            return
        log.info(
            "eval iter %d: AP %.4f MR^-2 %.4f JI %.4f (CrowdHuman definitions)",
            it, metrics["AP"], metrics["MR"], metrics["JI"],
        )  # fmt: skip
        self._jsonl({"type": "eval", "epoch": epoch, "iter": it, **metrics})
        row = {
            "epoch": epoch, "iter": it, "loss": losses.get("loss"), "cls": losses.get("cls"),
            "box": losses.get("box"), "AP": metrics["AP"], "MR": metrics["MR"],
            "JI": metrics["JI"], "coco_AP": (metrics.get("coco") or {}).get("AP"), "lr": lr,
        }  # fmt: skip
        path = self.run_dir / "results.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(row)
        if self.tb is not None:
            for k in ("AP", "MR", "JI"):
                self.tb.add_scalar(f"val/{k}", metrics[k], it)

    def pictures(self, panels: list[np.ndarray], it: int) -> None:
        """BGR pictures to TensorBoard as val/predictions/<i>."""
        if self.tb is None:
            return
        for i, panel in enumerate(panels):
            rgb = cv2.cvtColor(panel, cv2.COLOR_BGR2RGB)
            self.tb.add_image(f"val/predictions/{i}", rgb, it, dataformats="HWC")

    def _jsonl(self, record: dict) -> None:
        if self.run_dir is None:
            return
        record = {"time": round(time.time(), 3), **record}
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record, default=float) + "\n")

    def rewind(self, it: int) -> None:
        """Resuming from iteration `it`: drop what was logged after it (the steps being redone),
        so metrics.jsonl, results.csv and TensorBoard each hold every iteration once."""
        if self.run_dir is None:
            return
        jsonl, csv_path = self.run_dir / "metrics.jsonl", self.run_dir / "results.csv"
        if jsonl.exists():
            lines = jsonl.read_text().splitlines(keepends=True)
            kept = [x for x in lines if _logged_iter(x) <= it]
            if len(kept) < len(lines):
                atomic_write_text(jsonl, "".join(kept))
        if csv_path.exists():
            with open(csv_path, newline="") as f:
                rows = list(csv.DictReader(f))
            kept_rows = [r for r in rows if int(r["iter"]) <= it]
            if len(kept_rows) < len(rows):
                with atomic_open(csv_path) as f:
                    writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
                    writer.writeheader()
                    writer.writerows(kept_rows)
        if self.tb is not None:  # TensorBoard hides events after purge_step itself
            from torch.utils.tensorboard import SummaryWriter

            self.tb.close()
            self.tb = SummaryWriter(log_dir=str(self.run_dir), purge_step=it + 1)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
