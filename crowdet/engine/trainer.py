"""The training loop: one readable loop over optimizer steps, evaluation, atomic checkpoints.

Batches come from a seeded per-epoch permutation (crowdet.engine.data.epoch_batches), so a run
resumed at (epoch, batch) sees exactly the batches the straight run would have seen.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import time
from pathlib import Path

import torch
from tqdm import tqdm

from crowdet.config import Config, config_to_dict, diff_configs, dump_config
from crowdet.engine import data as D
from crowdet.engine.checkpoint import load_with_fallback, save_checkpoint
from crowdet.engine.evaluator import evaluate_model
from crowdet.engine.log import RunLogger
from crowdet.engine.optim import build_optimizer, build_scheduler
from crowdet.engine.state import rng_state, seed_everything, set_rng_state
from crowdet.errors import CrowdetError
from crowdet.models.build import build_detector

log = logging.getLogger("crowdet.train")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def next_run_dir(base: Path, name: str) -> Path:
    n = 1
    while (base / f"{name}-{n}").exists():
        n += 1
    return base / f"{name}-{n}"


class Trainer:
    def __init__(self, cfg: Config, run_dir: Path, progress: bool | None = None):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.progress = progress
        t = cfg.train
        if t.threads:
            torch.set_num_threads(t.threads)
        seed_everything(t.seed, t.deterministic)
        self.device = resolve_device(t.device)
        D.ensure_dataset(cfg)
        self.train_records = D.load_records(cfg, "train")
        self.val_records = D.load_records(cfg, "val")
        self.train_set = D.build_dataset(cfg, self.train_records, train=True)
        self.val_set = D.build_dataset(cfg, self.val_records, train=False)
        self.model = build_detector(cfg).to(self.device)
        self.optimizer = build_optimizer(self.model, t)
        self.scheduler = build_scheduler(self.optimizer, t)
        self.iter, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best_mr = math.inf
        self.bad_steps = 0
        self.skipped: dict[str, int] = {}
        self.last_losses: dict[str, float] = {}
        self.stop_signal: int | None = None
        self.last_eval = None  # (EvalResult, detections) of the latest validation
        self.run_dir.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, self.run_dir / "config.yaml")
        self.logger = RunLogger(self.run_dir)

    # ---- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "iter": self.iter,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "best_mr": self.best_mr,
            "skipped": dict(self.skipped),
            "rng": rng_state(),
            "config": config_to_dict(self.cfg),
        }

    def save(self, name: str = "last.pt") -> Path:
        return save_checkpoint(self.state_dict(), self.run_dir / name)

    def resume(self, path: Path, force: bool = False) -> None:
        state, used = load_with_fallback(path)
        changed = diff_configs(state.get("config", {}), config_to_dict(self.cfg))
        changed = [k for k in changed if not k.startswith(("train.max_iters", "train.time_limit"))]
        if changed and not force:
            raise CrowdetError(
                f"{used}: the config differs from the checkpoint's in {', '.join(changed)}; "
                "resume with the same config, or pass --force"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.iter, self.epoch = state["iter"], state["epoch"]
        self.batch_in_epoch, self.best_mr = state["batch_in_epoch"], state["best_mr"]
        self.skipped = dict(state.get("skipped", {}))
        set_rng_state(state["rng"])
        log.info("resumed from %s at iteration %d (epoch %d)", used, self.iter, self.epoch)

    # ---- the loop ----------------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:
        log.warning(
            "received %s: finishing this step, saving, then exiting", signal.Signals(signum).name
        )
        self.stop_signal = signum

    def train(self) -> dict | None:
        t = self.cfg.train
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        self.model.train()
        start = time.perf_counter()
        disable = None if self.progress is None else not self.progress  # None: only on a tty
        bar = tqdm(total=t.max_iters, initial=self.iter, desc="train", disable=disable)
        try:
            while self.iter < t.max_iters and not self._should_stop(start):
                self._run_epoch(bar, start)
        finally:
            bar.close()
            for s, h in old.items():
                signal.signal(s, h)
        self.save()
        if self.stop_signal is not None:
            log.info(
                "saved %s at iteration %d; resume with --resume",
                self.run_dir / "last.pt",
                self.iter,
            )
            self.logger.close()
            return None
        metrics = self.validate()
        self.logger.close()
        self._log_skipped()
        return metrics

    def _should_stop(self, start: float) -> bool:
        limit = self.cfg.train.time_limit
        return self.stop_signal is not None or bool(limit and time.perf_counter() - start > limit)

    def _run_epoch(self, bar, start: float) -> None:
        t, d = self.cfg.train, self.cfg.data
        batches = D.epoch_batches(len(self.train_set), t.batch_size, self.epoch, t.seed)
        self.train_set.set_epoch(self.epoch)
        loader = D.make_loader(
            self.train_set, batches[self.batch_in_epoch :], d.workers, d.size_divisor
        )
        tick = time.perf_counter()
        for batch in loader:
            data_time = time.perf_counter() - tick
            self._step(batch)
            self.batch_in_epoch += 1
            self.iter += 1
            bar.update(1)
            step_time = time.perf_counter() - tick
            self._periodic(data_time, step_time, len(batch.image_ids))
            tick = time.perf_counter()
            if self.iter >= t.max_iters or self._should_stop(start):
                break
        else:
            self.epoch += 1
            self.batch_in_epoch = 0

    def _step(self, batch) -> None:
        for kind, n in batch.skipped.items():
            self.skipped[kind] = self.skipped.get(kind, 0) + n
        batch = batch.to(self.device)
        losses = self.model.loss(batch)
        total = sum(losses.values())
        if not torch.isfinite(total):
            self._bad_step(losses, batch.image_ids)
            return
        self.bad_steps = 0
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.cfg.train.clip_grad:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.clip_grad)
        self.optimizer.step()
        self.scheduler.step()
        self.last_losses = {"loss": float(total), **{k: float(v) for k, v in losses.items()}}

    def _bad_step(self, losses: dict, image_ids: list[str]) -> None:
        self.bad_steps += 1
        terms = {k: float(v) for k, v in losses.items()}
        log.warning("non-finite loss at iteration %d %s: step skipped", self.iter, terms)
        self.skipped["non-finite loss"] = self.skipped.get("non-finite loss", 0) + 1
        if self.bad_steps >= self.cfg.train.max_bad_steps:
            report = {"iter": self.iter, "losses": terms, "image_ids": image_ids}
            path = self.run_dir / "bad_step.json"
            path.write_text(json.dumps(report, indent=2))
            raise CrowdetError(
                f"{self.bad_steps} non-finite losses in a row at iteration {self.iter}; "
                f"loss terms and image IDs written to {path}; last good checkpoint kept"
            )

    def _periodic(self, data_time: float, step_time: float, n_images: int) -> None:
        t = self.cfg.train
        if self.last_losses and (self.iter % t.log_interval == 0 or self.iter == 1):
            timing = {"data": data_time, "iter": step_time, "ips": n_images / max(step_time, 1e-9)}
            self.logger.step(self.iter, t.max_iters, self.last_losses, self._lr(), timing)
        if t.checkpoint_interval and self.iter % t.checkpoint_interval == 0:
            self.save()
        if t.eval_interval and self.iter % t.eval_interval == 0 and self.iter < t.max_iters:
            self.validate()

    def _lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def validate(self) -> dict:
        cfg = self.cfg
        loader = D.eval_loader(cfg, self.val_set)
        result, dets = evaluate_model(
            self.model, loader, self.val_records, self.device,
            box_kind=cfg.eval.box or cfg.data.box, coco=cfg.eval.coco,
        )  # fmt: skip
        metrics = result.to_json()
        self.last_eval = (result, dets)
        self.logger.evaluation(self.epoch, self.iter, self.last_losses, metrics, self._lr())
        if metrics["MR"] < self.best_mr:
            self.best_mr = metrics["MR"]
            self.save("best.pt")
        return metrics

    def _log_skipped(self) -> None:
        if self.skipped:
            counts = ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items()))
            log.warning("training skipped samples or steps: %s", counts)
