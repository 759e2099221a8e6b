"""Run a detector over a dataset and score it with crowdet.evaluate (training and eval alike).

Under DDP each rank predicts its shard of the validation set (`data.eval_loader(rank, world)`),
the per-image detections are gathered by image ID on every rank (an image seen twice counts
once), and the metrics are computed from the merged dict: they equal the single-process ones.
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from crowdet.engine.dist import gather_objects


@torch.no_grad()
def predict_loader(model, loader, device, progress: bool = False, desc: str = "eval"):
    """-> dets {image_id: (boxes (N,4) xyxy, scores (N,))} and sizes {image_id: (W, H)}."""
    was_training = model.training
    model.eval()
    dets, sizes = {}, {}
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        batch = batch.to(device)
        for image_id, det, hw in zip(batch.image_ids, model.predict(batch), batch.orig_sizes):
            dets[image_id] = (det.boxes.cpu().numpy(), det.scores.cpu().numpy())
            sizes[image_id] = (int(hw[1]), int(hw[0]))
    model.train(was_training)
    return dets, sizes


def gather_detections(dets: dict, sizes: dict) -> tuple[dict, dict]:
    """Merge every rank's {image_id: ...} dicts (identity outside DDP); duplicates collapse."""
    merged_dets, merged_sizes = {}, {}
    for part_dets, part_sizes in gather_objects((dets, sizes)):
        merged_dets.update(part_dets)
        merged_sizes.update(part_sizes)
    return merged_dets, merged_sizes


def score_detections(records, dets: dict, sizes: dict, box_kind="full", coco=True):
    """crowdet.evaluate.EvalResult of `dets` against the records that were predicted."""
    from crowdet.evaluate import evaluate

    scored = [r for r in records if r.image_id in dets]
    for r in scored:  # the evaluator clips with the original image sizes
        r.width, r.height = sizes[r.image_id]
    return evaluate(scored, dets, box_kind=box_kind, sizes=sizes, coco=coco)


def evaluate_model(model, loader, records, device, box_kind="full", coco=True, progress=False):
    """Detections on `loader` scored against `records` -> (EvalResult, detections)."""
    dets, sizes = predict_loader(model, loader, device, progress)
    return score_detections(records, dets, sizes, box_kind, coco), dets
