"""Per-step bookkeeping of the training loop: interval statistics for the log line, the
finiteness check of the loss terms, and the report written when a run stops on bad steps."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

import torch

from crowdet.engine.dist import gather_objects
from crowdet.errors import CrowdetError


@contextmanager
def catch_stop_signals(on_signal: Callable[[int], None]):
    """Inside the block SIGTERM and SIGINT call on_signal(signum) instead of ending the process;
    the previous handlers come back afterwards. Only the main thread can own signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wanted = (signal.SIGTERM, signal.SIGINT)
    old = {s: signal.signal(s, lambda signum, frame: on_signal(signum)) for s in wanted}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def all_finite(losses: dict[str, torch.Tensor]) -> bool:
    """True when every loss term (scalar tensors) is finite."""
    return bool(torch.isfinite(torch.stack([v.detach().float() for v in losses.values()])).all())


class StepStats:
    """Means over the current log interval, and the session's pace for the ETA."""

    def __init__(self, start: float, start_iter: int):
        self.start, self.start_iter = start, start_iter
        self._reset()

    def _reset(self) -> None:
        self.losses: dict[str, float] = {}
        self.data = self.step = 0.0
        self.images = self.steps = 0

    def add(self, losses: dict[str, float], data_s: float, step_s: float, images: int) -> None:
        for k, v in losses.items():
            self.losses[k] = self.losses.get(k, 0.0) + v
        self.data += data_s
        self.step += step_s
        self.images += images
        self.steps += 1

    def flush(self, it: int, max_iters: int) -> dict | None:
        """-> {losses, data_time, step_time, ips, eta} over the interval (None: no good step)."""
        if not self.steps:
            return None
        n = self.steps
        pace = (time.perf_counter() - self.start) / max(1, it - self.start_iter)
        out = {
            "losses": {k: v / n for k, v in self.losses.items()},
            "data_time": self.data / n,
            "step_time": self.step / n,
            "ips": self.images / max(self.step, 1e-9),
            "eta": pace * (max_iters - it),
        }
        self._reset()
        return out


def report_bad_step(trainer, kind: str, terms: dict, image_ids: list[str]) -> None:
    """Write RUN/bad_step.json (every rank's loss terms and image IDs) and stop the run; the last
    good checkpoint is left untouched. Called on every rank at the same step."""
    t = trainer
    per_rank = gather_objects({"rank": t.dist.rank, "losses": terms, "image_ids": image_ids})
    path = t.run_dir / "bad_step.json"
    if t.is_main:
        report = {"iter": t.iter, "kind": kind, "consecutive": t.bad_steps, "ranks": per_rank}
        path.write_text(json.dumps(report, indent=2, default=float))
    raise CrowdetError(
        f"{t.bad_steps} bad steps in a row ({kind}) at iteration {t.iter}; loss terms and "
        f"image IDs written to {path}; last good checkpoint kept"
    )
