"""Run a detector over a dataset and score it with crowdet.evaluate (training and eval alike)."""

from __future__ import annotations

import torch
from tqdm import tqdm

from crowdet.evaluate import evaluate


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


def evaluate_model(model, loader, records, device, box_kind="full", coco=True, progress=False):
    """Detections on `loader` scored against `records` -> crowdet.evaluate.EvalResult."""
    dets, sizes = predict_loader(model, loader, device, progress)
    scored = [r for r in records if r.image_id in dets]
    for r in scored:  # the evaluator clips with the original image sizes
        r.width, r.height = sizes[r.image_id]
    return evaluate(scored, dets, box_kind=box_kind, sizes=sizes, coco=coco), dets
