"""Validation during training: score the model (its EMA when on) on the val set, log it, keep
best.pt, and decide early stopping."""

from __future__ import annotations

import logging

from crowdet.engine import data as D
from crowdet.engine.dist import broadcast_object
from crowdet.engine.log import prediction_pictures
from crowdet.engine.model_eval import gather_detections, predict_loader, score_detections

log = logging.getLogger("crowdet.train")


def validate(trainer) -> dict:
    """Sharded over ranks, the metrics on every rank; an unreadable val image stays in them
    with no detections (its people missed) and is listed under `skipped_images`."""
    t, cfg = trainer, trainer.cfg
    model = t.ema.module if t.ema is not None else t.model
    loader = D.eval_loader(cfg, t.val_set, t.dist.rank, t.dist.world)
    show = bool(t.progress) and t.is_main
    visible = cfg.scores_visible()
    dets, sizes, unread = gather_detections(
        *predict_loader(model, loader, t.device, show, visible=visible)
    )
    metrics = None
    if t.is_main:
        box = cfg.eval.box or cfg.data.box
        result = score_detections(
            t.val_records, dets, sizes, box, cfg.eval.coco, unread, cfg.eval.caltech
        )
        metrics = result.to_json()
        t.last_eval = (result, dets)
        t.logger.evaluation(t.epoch, t.iter, t.last_losses, metrics, t._lr())
        if cfg.train.vis_images:
            pictures = prediction_pictures(
                t.val_records, dets, box, cfg.train.vis_images, cfg.data.input_size
            )
            t.logger.pictures(pictures, t.iter)
    metrics = broadcast_object(metrics)
    t.last_eval_iter, t.last_metrics = t.iter, metrics
    track_best(t, metrics["MR"])
    return metrics


def track_best(trainer, mr: float) -> None:
    """best.pt on a better MR^-2; early stop after train.patience evaluations without one."""
    t = trainer
    if mr < t.best_mr:
        t.best_mr, t.evals_since_best = mr, 0
        t.save("best.pt")
        return
    t.evals_since_best += 1
    patience = t.cfg.train.patience
    if patience and t.evals_since_best >= patience:
        t.stop_reason = f"no better MR^-2 in {patience} evaluations"
        log.info("early stop at iteration %d: %s", t.iter, t.stop_reason)
