"""train.time_budget: fit the schedule's length to a training time, from the pace of the steps."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("crowdet.train")

PLAN_EVERY = 20  # steps between re-plans


class TimeBudget:
    """The schedule's length (`max_iters`) of a run given `budget` seconds of training (0: the
    fixed `cap`), and the training seconds spent, both kept across resumes.

    Each training session calls `start(iteration)`, then `after_step(iteration)` after every
    step: it counts the time and, every PLAN_EVERY steps of the session, sets max_iters to the
    steps that fit in the time left at the session's pace (periodic validation and checkpoints
    included), within [iteration, cap]. `agree` makes every rank use the same length (DDP);
    `clock` is what the time is measured by."""

    def __init__(
        self,
        budget: float,
        cap: int,
        agree: Callable[[int], int] = lambda n: n,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.budget, self.cap, self.agree, self.clock = budget, cap, agree, clock
        self.max_iters, self.seconds = cap, 0.0
        self._session, self._plans = (0.0, 0, 0.0), 0  # (clock, iteration, seconds) at start

    def start(self, iteration: int) -> None:
        self._session, self._plans = (self.clock(), iteration, self.seconds), 0

    def after_step(self, iteration: int) -> bool:
        """Count the time; re-plan when due -> whether max_iters was re-planned."""
        start, first, before = self._session
        now = self.clock()
        self.seconds = before + now - start
        done = iteration - first
        if not self.budget or done < PLAN_EVERY or iteration % PLAN_EVERY:
            return False
        pace = (now - start) / done
        fit = iteration + int((self.budget - self.seconds) / pace)
        self.max_iters = self.agree(max(iteration, min(self.cap, fit)))
        self._plans += 1
        if self._plans == 1:
            log.info(
                "train.time_budget=%gs: %.3f s per step, planning %d steps",
                self.budget, pace, self.max_iters,
            )  # fmt: skip
        return True

    def state_dict(self) -> dict:
        return {"max_iters": self.max_iters, "train_seconds": self.seconds}

    def load_state_dict(self, state: dict) -> None:
        """A budgeted run goes on with its plan (within a changed cap) and its spent time."""
        self.seconds = state.get("train_seconds", 0.0)
        if self.budget:
            self.max_iters = min(state.get("max_iters", self.cap), self.cap)
