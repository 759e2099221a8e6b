"""The training loop: one readable loop over optimizer steps, evaluation, atomic checkpoints.

Batches come from a seeded per-epoch permutation (crowdet.engine.data.epoch_batches), so a run
resumed at (epoch, batch) sees exactly the batches the straight run would have seen. One optimizer
step sums the gradients of `train.accumulate` batches. Under DDP (one process per device, started
by torchrun) every rank takes the same number of steps, agrees on skipped steps and on stopping,
and only rank 0 writes the run folder.
"""

from __future__ import annotations

import logging
import math
import signal
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from crowdet.config import Config
from crowdet.engine import amp
from crowdet.engine import data as D
from crowdet.engine.budget import TimeBudget
from crowdet.engine.checkpoint import load_with_fallback, save_checkpoint
from crowdet.engine.dist import (
    DistInfo,
    any_across_ranks,
    barrier,
    broadcast_object,
    mean_across_ranks,
    resolve_device,
)
from crowdet.engine.ema import ModelEMA
from crowdet.engine.faults import (
    DataFaults,
    log_end_counts,
    refuse_non_finite,
    restore_buffers,
    snapshot_buffers,
)
from crowdet.engine.hardware import CpuShare, cpu_info, precision_line
from crowdet.engine.log import RunLogger, peak_memory_mb
from crowdet.engine.optim import build_optimizer, build_scheduler, scaled_lr
from crowdet.engine.run_folder import make_run_dir, next_run_dir, write_config
from crowdet.engine.state import seed_everything
from crowdet.engine.steps import StepStats, all_finite, catch_stop_signals, report_bad_step
from crowdet.engine.trainer_state import check_config, restore_training, training_state
from crowdet.engine.validation import validate
from crowdet.errors import CrowdetError
from crowdet.models.build import build_detector, build_loss
from crowdet.models.pretrained import load_initial_weights

log = logging.getLogger("crowdet.train")

EMPTY_BATCH = "empty batch"  # a step whose batch held no readable image

__all__ = ["Trainer", "next_run_dir", "resolve_device"]


class LossForward(nn.Module):
    """detector.loss as a module's forward, so DDP sees the whole training computation."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, batch) -> dict[str, torch.Tensor]:
        return self.detector.loss(batch)


class Trainer:
    def __init__(
        self,
        cfg: Config,
        run_dir: Path,
        progress: bool | None = None,
        dist: DistInfo | None = None,
        device: torch.device | None = None,
    ):
        """progress: tqdm bar (None: only on a terminal); dist: this process's rank layout
        (default one process); device: default from train.device."""
        self.cfg, self.run_dir, self.progress = cfg, Path(run_dir), progress
        self.dist = dist or DistInfo()
        self.is_main = self.dist.is_main
        t = cfg.train
        if t.threads:
            torch.set_num_threads(t.threads)
        seed_everything(t.seed, t.deterministic)
        self.device = device or resolve_device(t.device, self.dist.local_rank)
        # the schedule's length: train.max_iters, or what fits in train.time_budget
        self.budget = TimeBudget(
            t.time_budget, t.max_iters, agree=broadcast_object, min_iters=t.budget_min_iters,
            share=CpuShare(torch.get_num_threads()) if self.device.type == "cpu" else None,
            clock=time.process_time if t.budget_clock == "cpu" else time.perf_counter,
            report=self.dist.is_main, curve=t.budget_curve,
        )  # fmt: skip
        self._build_data()
        self._build_model()
        self.iter, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best_mr, self.evals_since_best = math.inf, 0
        self.bad_steps = 0
        self.skipped: dict[str, int] = {}  # kind of skipped step -> steps
        self.last_losses: dict[str, float] = {}
        self.stop_signal: int | None = None
        self.stop_reason = ""
        self.last_eval = None  # (EvalResult, detections) of the latest validation, rank 0
        self.last_eval_iter, self.last_metrics = -1, None
        self.logger, self._run_open = RunLogger(None), False

    def _open_run(self) -> None:
        """Make the run folder, write config.yaml, open the logs: only once the run is accepted
        (a refused resume leaves the folder as it was)."""
        if self._run_open:
            return
        self._run_open = True
        if self.is_main:
            make_run_dir(self.run_dir)
            write_config(self.cfg, self.run_dir)
        self.logger = RunLogger(self.run_dir if self.is_main else None)

    # ---- set-up -----------------------------------------------------------------------------
    def _build_data(self) -> None:
        if self.is_main:  # one rank generates a missing synthetic set; the others wait
            D.ensure_dataset(self.cfg)
        barrier()
        D.ensure_dataset(self.cfg)
        self.train_records, report = D.load_records_report(self.cfg, "train")
        self.val_records = D.load_records(self.cfg, "val")
        self.faults = DataFaults(report)  # images skipped while training, counted once each
        self.faults.add_missing(D.check_split_images(self.cfg, "train", self.train_records))
        self.val_missing = D.check_split_images(self.cfg, "val", self.val_records)
        self.train_set = D.build_dataset(self.cfg, self.train_records, train=True)
        self.val_set = D.build_dataset(self.cfg, self.val_records, train=False)

    def _build_model(self) -> None:
        t, world = self.cfg.train, self.dist.world
        model = build_detector(self.cfg)
        load_initial_weights(model, self.cfg)  # pretrained backbone, model.init_from
        if world > 1:  # the positive count that normalises the loss is averaged over ranks
            model.loss_fn = build_loss(self.cfg, num_pos_reducer=mean_across_ranks)
        if t.sync_bn and world > 1:
            if self.device.type != "cuda":
                raise CrowdetError("train.sync_bn=true needs CUDA devices (SyncBatchNorm)")
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model.to(self.device)
        self.ema = ModelEMA(self.model, t.ema_decay) if t.ema else None
        self.amp = amp.effective_mode(t.amp, self.device)
        if self.is_main:
            log.info(precision_line(t.amp, self.amp, self.device, cpu_info()))
        self.scaler = amp.grad_scaler(self.amp, self.device)
        lr = scaled_lr(t, world)
        if lr != t.lr:
            log.info("learning rate %.3g scaled linearly to %.3g (total batch)", t.lr, lr)
        self.optimizer = build_optimizer(self.model, t, lr)
        self.scheduler = build_scheduler(self.optimizer, t, lambda: self.budget.max_iters)
        if t.compile:
            self.model.compile()
        forward = LossForward(self.model)
        if world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            forward = DistributedDataParallel(forward, device_ids=ids)
        self.forward = forward

    # ---- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return training_state(self)

    def save(self, name: str = "last.pt") -> Path | None:
        """Write the state to the run folder (rank 0 only); a state holding NaN or inf is
        refused (CrowdetError), the checkpoint already there kept."""
        if not self.is_main:
            return None
        self._open_run()
        state = self.state_dict()
        refuse_non_finite(state, self.run_dir / name)
        return save_checkpoint(state, self.run_dir / name)

    def resume(self, path: Path, force: bool = False) -> None:
        """Continue from a checkpoint (its .prev when it is truncated), see load_state."""
        state, used = load_with_fallback(path)
        self.load_state(state, used, force)

    def load_state(self, state: dict, source: Path, force: bool = False) -> None:
        """Restore everything; a config that differs from the checkpoint's is refused (listing
        the keys) unless `force`, and then nothing is written to the run folder."""
        check_config(self, state, source, force)
        restore_training(self, state, source)
        self._open_run()
        self.logger.rewind(self.iter)

    # ---- the loop ---------------------------------------------------------------------------
    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.stop_signal is not None:  # a second Ctrl-C must not tear the save
            log.warning("received %s again: already stopping; saving first, then exiting", name)
            return
        log.warning("received %s: finishing this step, saving, then exiting", name)
        self.stop_signal = signum

    def train(self, final_eval: bool = True) -> dict | None:
        """Train to train.max_iters, or for about train.time_budget seconds, or to a stop; -> the
        final validation metrics, None when stopped by a signal (last.pt then holds the exact
        position to resume from)."""
        self._open_run()
        try:
            with catch_stop_signals(self._on_signal):  # the save too: a signal cannot tear it
                self._loop()
                self.save()
                if self.stop_signal is not None:
                    self.logger.close()
                    log.info(
                        "saved %s at iteration %d; resume with --resume", self.run_dir, self.iter
                    )
                    return None
            metrics = self.last_metrics
            if final_eval and self.last_eval_iter != self.iter:
                metrics = self.validate()
                self.save()
            self._log_skipped()
            return metrics
        finally:
            self.logger.close()

    def _loop(self) -> None:
        self.model.train()
        self.stats = StepStats(time.perf_counter(), self.iter)
        self.budget.start(self.iter)
        # a bar on rank 0 only; progress=None: only when the output is a terminal
        disable = not self.is_main or (None if self.progress is None else not self.progress)
        bar = tqdm(total=self.max_iters, initial=self.iter, desc="train", disable=disable)
        stream = self._micro_batches()
        try:
            while self.iter < self.max_iters and not self._agree_to_stop():
                self._step(stream)
                if self.budget.after_step(self.iter) and bar.total != self.max_iters:
                    bar.total = self.max_iters
                    bar.refresh()
                bar.update(1)
                self._periodic()
        finally:
            stream.close()
            bar.close()

    def _agree_to_stop(self) -> bool:
        """Whether to stop now, the same answer on every rank: a signal or the time limit seen
        by one rank stops them all at the same step; early stopping is decided identically."""
        limit = self.cfg.train.time_limit
        timed_out = bool(limit and time.perf_counter() - self.stats.start > limit)
        signalled, timed_out = any_across_ranks(
            [self.stop_signal is not None, timed_out], self.device
        )
        if signalled:
            self.stop_signal = self.stop_signal or signal.SIGTERM
        if timed_out and not self.stop_reason:
            self.stop_reason = f"train.time_limit={limit}s reached"
            log.info("stopping at iteration %d: %s", self.iter, self.stop_reason)
        return signalled or bool(self.stop_reason)

    def _strong_on(self) -> bool:
        """Whether the step about to run uses the strong augmentation (augment.strong_off_last
        of the schedule as planned now)."""
        return self.iter < D.strong_until(self.cfg, self.max_iters)

    def _micro_batches(self):
        """Endless (batch, data seconds) from the current (epoch, batch_in_epoch); the position
        is advanced as each batch is handed out, so a checkpoint names the next batch. When the
        strong augmentation switches off, the loader restarts at the next batch (what it had
        prepared ahead is dropped): a batch is strong exactly when its step is before the
        switch, whatever the number of workers, and on resume."""
        t, d = self.cfg.train, self.cfg.data
        while True:
            batches = D.epoch_batches(
                len(self.train_set), t.batch_size, self.epoch, t.seed, self.dist.rank,
                self.dist.world,
            )  # fmt: skip
            self.batch_in_epoch = min(self.batch_in_epoch, len(batches) - 1)
            self.train_set.set_epoch(self.epoch)
            self.train_set.set_strong(self._strong_on())
            loader = D.make_loader(
                self.train_set, batches[self.batch_in_epoch :], d.workers, d.size_divisor,
                seed=t.seed + self.epoch,
            )  # fmt: skip
            tick = time.perf_counter()
            for batch in loader:
                self.batch_in_epoch += 1
                if self.batch_in_epoch == len(batches):
                    self.epoch, self.batch_in_epoch = self.epoch + 1, 0
                yield batch, time.perf_counter() - tick
                tick = time.perf_counter()
                if self.batch_in_epoch == 0 or self._strong_on() != self.train_set.strong:
                    break  # a new epoch, or the strong augmentation switched

    def _step(self, stream) -> None:
        """One optimizer step over train.accumulate batches; a step with a non-finite loss term
        or gradient is skipped (and counted) on every rank alike."""
        t = self.cfg.train
        tick = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        progress = getattr(self.model.loss_fn, "set_progress", None)
        if progress is not None:  # a loss with terms for part of the run (YOLOX's L1)
            progress(self.iter, self.max_iters)
        buffers = snapshot_buffers(self.model)  # a skipped step leaves the BN statistics alone
        bad, sums, data_time, ids = None, {}, 0.0, []
        for k in range(t.accumulate):
            batch, dt = next(stream)
            data_time += dt
            self.faults.add(batch.skipped_images)
            if bad is not None:  # the step is lost: keep the batch order, compute nothing
                continue
            if any_across_ranks([batch.num_images == 0], self.device)[0]:
                bad = (EMPTY_BATCH, {}, batch.image_ids)
                continue
            ids += batch.image_ids
            losses, ok = self._backward(batch, last=k == t.accumulate - 1)
            if not ok:
                bad = ("non-finite loss", losses, batch.image_ids)
                continue
            for name, v in {"loss": sum(losses.values()), **losses}.items():
                sums[name] = sums.get(name, 0.0) + float(v.detach()) / t.accumulate
        if bad is None:
            bad = self._apply_gradients(ids)
        self._advance_schedule()
        if bad is not None:
            restore_buffers(buffers)
            self._bad_step(*bad)
        else:
            self.bad_steps = 0
            self.last_losses = sums
            step_s = time.perf_counter() - tick
            self.stats.add(sums, data_time, step_s, len(ids) * self.dist.world)
        self.iter += 1

    def _backward(self, batch, last: bool) -> tuple[dict, bool]:
        """Forward and backward of one batch, gradients synchronised over ranks only on the
        step's last batch -> (loss terms, ok). ok is False on every rank when any rank's terms
        are not finite; then no rank runs the backward."""
        sync = nullcontext() if last or self.dist.world == 1 else self.forward.no_sync()
        with sync:
            batch = batch.to(self.device)
            with amp.autocast(self.amp, self.device):
                losses = self.forward(batch)
            if any_across_ranks([not all_finite(losses)], self.device)[0]:
                return losses, False
            self.scaler.scale(sum(losses.values()) / self.cfg.train.accumulate).backward()
        return losses, True

    def _apply_gradients(self, image_ids: list[str]):
        """Unscale, clip, step; -> None, or (kind, terms, image IDs) when the gradient is not
        finite (gradients are all-reduced, so every rank sees the same norm)."""
        t = self.cfg.train
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.grad is not None]
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        if not self.scaler.is_enabled() and not torch.isfinite(norm):
            return ("non-finite gradient", {"grad_norm": norm}, image_ids)
        if t.clip_grad:
            torch.nn.utils.clip_grads_with_norm_(params, t.clip_grad, norm)
        self.scaler.step(self.optimizer)  # fp16: skipped by the scaler when gradients overflow
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.model)
        return None

    def _advance_schedule(self) -> None:
        """The schedule follows the step count, skipped steps included."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)`")
            self.scheduler.step()

    def _bad_step(self, kind: str, losses: dict, image_ids: list[str]) -> None:
        first = kind not in self.skipped
        self.skipped[kind] = self.skipped.get(kind, 0) + 1
        if kind == EMPTY_BATCH:  # a data problem, not a numeric one: no streak
            if first:
                log.warning(
                    "step %d skipped: no image of its batch could be read; such steps are "
                    "counted", self.iter,
                )  # fmt: skip
            return
        self.bad_steps += 1
        terms = {k: float(torch.as_tensor(v).detach()) for k, v in losses.items()}
        log.warning("%s at iteration %d %s: step skipped", kind, self.iter, terms)
        if self.bad_steps >= self.cfg.train.max_bad_steps:
            report_bad_step(self, kind, terms, image_ids)

    def _periodic(self) -> None:
        t = self.cfg.train
        if self.iter % t.log_interval == 0 or self.iter == 1:
            timing = self.stats.flush(self.iter, self.max_iters)
            if timing is not None:
                timing["mem"] = peak_memory_mb(self.device)
                losses = timing.pop("losses")
                self.logger.step(self.iter, self.max_iters, losses, self._lr(), timing)
        if t.checkpoint_interval and self.iter % t.checkpoint_interval == 0:
            if self.bad_steps:  # the last good checkpoint stays the last one written
                log.info("no checkpoint at iteration %d: %d bad step(s) in a row", self.iter,
                         self.bad_steps)  # fmt: skip
            else:
                self.save()
        if t.eval_interval and self.iter % t.eval_interval == 0 and self.iter < self.max_iters:
            self.validate()

    @property
    def max_iters(self) -> int:
        """The schedule's length: train.max_iters, or the steps planned for train.time_budget."""
        return self.budget.max_iters

    def _lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    # ---- evaluation -------------------------------------------------------------------------
    def validate(self) -> dict:
        """Score the model (its EMA when on) on val; sharded over ranks, metrics on every rank."""
        return validate(self)

    def _log_skipped(self) -> None:
        log_end_counts(self.faults, self.skipped)
