"""Pictures for people: predictions beside ground truth, and training curves (matplotlib, Agg)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

GT_COLOR = (0, 200, 0)  # BGR green: people
IGNORE_COLOR = (0, 0, 230)  # red: ignore regions
PRED_COLOR = (255, 160, 0)  # blue: detections


def draw_boxes(image: np.ndarray, boxes: np.ndarray, color, thickness: int = 1, labels=None):
    """Draw xyxy boxes (N, 4) on a copy of a BGR image; optional text per box."""
    from crowdet.data.show import draw_rectangles

    out = image.copy()
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    draw_rectangles(out, boxes, color, thickness)
    for text, (x1, y1) in zip(labels or [], boxes[:, :2].round().astype(int)):
        cv2.putText(out, text, (int(x1), max(8, int(y1) - 2)), cv2.FONT_HERSHEY_SIMPLEX, 0.3, color)
    return out


def _title(image: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((18, image.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, image])


def prediction_panel(image, gt_boxes, gt_ignore, det_boxes, det_scores, score_min=0.3):
    """One row: ground truth (people green, ignore red) | detections with score >= score_min."""
    gt = draw_boxes(image, gt_boxes[~gt_ignore], GT_COLOR)
    gt = draw_boxes(gt, gt_boxes[gt_ignore], IGNORE_COLOR, 2)
    keep = det_scores >= score_min
    labels = [f"{s:.2f}" for s in det_scores[keep]]
    pred = draw_boxes(image, det_boxes[keep], PRED_COLOR, 1, labels)
    n_gt, n_det = int((~gt_ignore).sum()), int(keep.sum())
    left = _title(gt, f"ground truth: {n_gt} people, {int(gt_ignore.sum())} ignore (red)")
    right = _title(pred, f"detections: {n_det} with score >= {score_min}")
    gap = np.full((left.shape[0], 6, 3), 255, np.uint8)
    return np.hstack([left, gap, right])


def save_prediction_grid(panels: list[np.ndarray], path: Path, max_width: int = 1400) -> Path:
    """Stack panels vertically (resized to a common width) into one PNG."""
    width = min(max_width, max(p.shape[1] for p in panels))
    rows = [cv2.resize(p, (width, round(p.shape[0] * width / p.shape[1]))) for p in panels]
    gap = np.full((8, width, 3), 255, np.uint8)
    grid = np.vstack([x for r in rows for x in (r, gap)][:-1])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), grid)
    return path


NOT_LOSSES = {"time", "type", "iter", "epoch", "lr", "data_time", "step_time", "ips", "eta", "mem"}


def loss_keys(train: list[dict]) -> list[str]:
    """The loss terms the training rows log: "loss" first, then the method's terms in the order
    logged (cls / box for most, pos_bag / neg_bag for FreeAnchor, rep_gt ... when on)."""
    keys = dict.fromkeys(k for r in train for k in r if k not in NOT_LOSSES)
    return sorted(keys, key=lambda k: k != "loss")


def plot_training_curves(metrics_jsonl: Path, path: Path) -> Path:
    """Losses and learning rate against iteration, validation AP / MR^-2 / JI if any."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(metrics_jsonl).read_text().splitlines() if line]
    train = [r for r in rows if r["type"] == "train"]
    evals = [r for r in rows if r["type"] == "eval"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    it = [r["iter"] for r in train]
    for key in loss_keys(train):
        axes[0].plot(it, [r.get(key, float("nan")) for r in train], label=key)
    axes[0].set(title="training losses", xlabel="iteration", yscale="log")
    axes[0].legend()
    axes[1].plot(it, [r["lr"] for r in train])
    axes[1].set(title="learning rate", xlabel="iteration")
    for key, label in (("AP", "AP"), ("MR", "MR$^{-2}$"), ("JI", "JI")):
        axes[2].plot([r["iter"] for r in evals], [r[key] for r in evals], "o-", label=label)
    axes[2].set(title="validation (CrowdHuman metrics)", xlabel="iteration", ylim=(0, 1))
    axes[2].legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
