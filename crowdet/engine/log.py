"""Run outputs: one log line per interval, metrics.jsonl, results.csv, TensorBoard scalars."""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path

log = logging.getLogger("crowdet.train")

CSV_FIELDS = ["epoch", "iter", "loss", "cls", "box", "AP", "MR", "JI", "coco_AP", "lr"]


def format_eta(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class RunLogger:
    """Writes the run folder's logs; a no-op on ranks other than 0."""

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
        terms = " ".join(f"{k} {v:.3f}" for k, v in losses.items() if k != "loss")
        eta = format_eta(timing["iter"] * (max_iters - it))
        log.info(
            "iter %d/%d loss %.3f (%s) lr %.2e data %.3fs iter %.3fs %.1f img/s eta %s",
            it, max_iters, losses["loss"], terms, lr, timing["data"], timing["iter"],
            timing["ips"], eta,
        )  # fmt: skip
        self._jsonl({"type": "train", "iter": it, **losses, "lr": lr, **timing})
        if self.tb is not None:
            for k, v in losses.items():
                self.tb.add_scalar(f"train/{k}", v, it)
            self.tb.add_scalar("train/lr", lr, it)
            self.tb.add_scalar("train/images_per_s", timing["ips"], it)

    def evaluation(self, epoch: int, it: int, losses: dict, metrics: dict, lr: float) -> None:
        log.info(
            "eval iter %d: AP %.4f MR^-2 %.4f JI %.4f (CrowdHuman definitions)",
            it, metrics["AP"], metrics["MR"], metrics["JI"],
        )  # fmt: skip
        self._jsonl({"type": "eval", "epoch": epoch, "iter": it, **metrics})
        if self.run_dir is None:
            return
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

    def _jsonl(self, record: dict) -> None:
        if self.run_dir is None:
            return
        record = {"time": round(time.time(), 3), **record}
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record, default=float) + "\n")

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
