"""A Trainer's whole state as tensors and plain data (what last.pt holds), and its restore."""

from __future__ import annotations

import logging
from pathlib import Path

from crowdet.config import config_to_dict, saved_config
from crowdet.engine import data as D
from crowdet.engine.checkpoint import changed_keys
from crowdet.engine.state import rng_state, set_rng_state
from crowdet.engine.weights import load_weights
from crowdet.errors import CrowdetError

log = logging.getLogger("crowdet.train")


def training_state(trainer) -> dict:
    """Model, EMA, optimizer, scheduler, scaler, position, best metric, counts, RNG, config."""
    t = trainer
    state = {
        "model": t.model.state_dict(),
        "optimizer": t.optimizer.state_dict(),
        "scheduler": t.scheduler.state_dict(),
        "scaler": t.scaler.state_dict(),
        "iter": t.iter,
        **t.budget.state_dict(),
        "epoch": t.epoch,
        "batch_in_epoch": t.batch_in_epoch,
        "sampler": {"seed": t.cfg.train.seed, "batch_size": t.cfg.train.batch_size,
                    "world": t.dist.world},
        "best_mr": t.best_mr,
        "evals_since_best": t.evals_since_best,
        "bad_steps": t.bad_steps,
        "skipped": dict(t.skipped),
        "data_faults": t.faults.state_dict(),
        "rng": rng_state(),
        "config": config_to_dict(t.cfg),
    }  # fmt: skip
    if t.ema is not None:
        state["ema"] = t.ema.state_dict()
        state["ema_updates"] = t.ema.updates
    return state


def check_config(trainer, state: dict, source: Path, force: bool) -> None:
    """CrowdetError listing the keys when the config differs from the checkpoint's (unless
    `force`)."""
    changed = changed_keys(saved_config(state.get("config", {})), config_to_dict(trainer.cfg))
    if changed and not force:
        raise CrowdetError(
            f"{source}: the config differs from the checkpoint's in {', '.join(changed)}; "
            "resume with the same config, or pass --force"
        )


def restore_training(trainer, state: dict, source: Path) -> None:
    """Put `state` (from training_state) back into the trainer."""
    t = trainer
    load_weights(t.model, state, source, t.cfg, ema=False)
    t.optimizer.load_state_dict(state["optimizer"])
    t.scheduler.load_state_dict(state["scheduler"])
    if state.get("scaler"):
        t.scaler.load_state_dict(state["scaler"])
    if t.ema is not None:
        t.ema.load_state_dict(state.get("ema", state["model"]), state.get("ema_updates", 0))
    t.iter, t.epoch = state["iter"], state["epoch"]
    t.budget.load_state_dict(state)
    old_world = state.get("sampler", {}).get("world", 1)
    t.batch_in_epoch = D.resume_position(state["batch_in_epoch"], old_world, t.dist.world)
    t.best_mr = state["best_mr"]
    t.evals_since_best = state.get("evals_since_best", 0)
    t.bad_steps = state.get("bad_steps", 0)
    t.skipped = dict(state.get("skipped", {}))
    t.faults.load_state_dict(state.get("data_faults", {}))
    set_rng_state(state["rng"])
    log.info("resumed from %s at iteration %d (epoch %d)", source, t.iter, t.epoch)
