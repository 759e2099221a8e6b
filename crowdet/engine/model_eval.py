"""Run a detector over a dataset and score it with crowdet.evaluate (training and eval alike).

Under DDP each rank predicts its shard of the validation set (`data.eval_loader(rank, world)`),
the per-image detections are gathered by image ID on every rank (an image seen twice counts
once), and the metrics are computed from the merged dict: they equal the single-process ones.
An image that cannot be read is not left out of the metrics: its people count as missed.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
from tqdm import tqdm

from crowdet.engine.dist import gather_objects

log = logging.getLogger("crowdet.eval")


def _scored(det, visible: bool):
    """The boxes to score: the visible ones when asked (build_detector made sure the head
    predicts them), else the model's boxes."""
    return det.visible if visible else det.boxes


@torch.no_grad()
def predict_loader(
    model, loader, device, progress: bool = False, desc: str = "eval", visible: bool = False
):
    """-> dets {image_id: (boxes (N,4) xyxy, scores (N,))}, sizes {image_id: (W, H)} and the
    images that could not be read {image_id: message naming the file}. `visible`: the boxes are
    the visible boxes of a full + visible head (Config.scores_visible)."""
    was_training = model.training
    model.eval()
    dets, sizes, unread = {}, {}, {}
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        unread.update({image_id: msg for image_id, _, msg in batch.skipped_images})
        if batch.num_images == 0:
            continue
        batch = batch.to(device)
        for image_id, det, hw in zip(batch.image_ids, model.predict(batch), batch.orig_sizes):
            dets[image_id] = (_scored(det, visible).cpu().numpy(), det.scores.cpu().numpy())
            sizes[image_id] = (int(hw[1]), int(hw[0]))
    model.train(was_training)
    return dets, sizes, unread


def gather_detections(dets: dict, sizes: dict, unread: dict | None = None):
    """Merge every rank's {image_id: ...} dicts (identity outside DDP); duplicates collapse.
    -> (dets, sizes, unread)."""
    merged: tuple[dict, dict, dict] = ({}, {}, {})
    for parts in gather_objects((dets, sizes, unread or {})):
        for into, part in zip(merged, parts):
            into.update(part)
    return merged


def _unread_size(record) -> tuple[int, int]:
    """(W, H) to clip the GT of an image that could not be read: the annotated size, else the
    extent of its boxes (no detection is compared with them; they count as missed)."""
    if record.width > 0 and record.height > 0:
        return record.width, record.height
    boxes = record.fbox[np.isfinite(record.fbox).all(1)]
    if not len(boxes):
        return 1, 1
    return max(1, math.ceil(boxes[:, 2].max())), max(1, math.ceil(boxes[:, 3].max()))


def score_detections(
    records, dets: dict, sizes: dict, box_kind="full", coco=True, unread=None, caltech=False
):
    """crowdet.evaluate.EvalResult of `dets` against the records that were predicted, and the
    `unread` ones {image_id: message}: images that could not be read keep their ground truth
    (missed, with no detections), with one warning, and are listed in `skipped_images`."""
    from crowdet.evaluate import evaluate

    unread = unread or {}
    sizes = dict(sizes)
    scored = [r for r in records if r.image_id in dets or r.image_id in unread]
    for r in scored:  # the evaluator clips with the original image sizes
        if r.image_id in dets:
            r.width, r.height = sizes[r.image_id]
        else:
            sizes[r.image_id] = _unread_size(r)
    skipped = [r for r in scored if r.image_id not in dets]
    if skipped:
        people = sum(r.num_people for r in skipped)
        log.warning(
            "%d validation image(s) could not be read: scored with no detections, their %d "
            "people as missed (first: image %r, %s)",
            len(skipped), people, skipped[0].image_id, unread[skipped[0].image_id],
        )  # fmt: skip
    result = evaluate(scored, dets, box_kind=box_kind, sizes=sizes, coco=coco, caltech=caltech)
    result.skipped_images = [r.image_id for r in skipped]
    return result


def evaluate_model(
    model, loader, records, device, box_kind="full", coco=True, progress=False, caltech=False,
    visible=False,
):  # fmt: skip
    """Detections on `loader` scored against `records` -> (EvalResult, detections)."""
    dets, sizes, unread = predict_loader(model, loader, device, progress, visible=visible)
    return score_detections(records, dets, sizes, box_kind, coco, unread, caltech), dets
