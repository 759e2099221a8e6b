"""train.time_budget: fit the schedule's length to a training time, from the pace of the steps."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence

from crowdet.engine.hardware import BUSY_SHARE, CpuShare, busy_line

log = logging.getLogger("crowdet.train")

PLAN_EVERY = 20  # steps between re-plans
CHECK_AFTER = 100  # steps of a session after which the machine is checked (once)


class TimeBudget:
    """The schedule's length (`max_iters`) of a run given `budget` seconds of training (0: the
    fixed `cap`), and the training seconds spent, both kept across resumes.

    Each training session calls `start(iteration)`, then `after_step(iteration)` after every
    step: it counts the time and, every PLAN_EVERY steps of the session, sets max_iters to the
    steps that fit in the time left at the session's pace (periodic validation and checkpoints
    included), within [iteration, cap]. `agree` makes every rank use the same length (DDP);
    `clock` is what the time is measured by; `report`: whether this process says what it found
    (under DDP only rank 0 does; every rank plans and checks alike).

    After CHECK_AFTER steps of the session it checks the machine, once: how much of the time its
    threads were ready to run they got a CPU (`share`; a busy machine is said so), and whether
    the planned steps reach `min_iters`, the fewest the recipe is known to need (0: no check).
    `machine` holds what was found."""

    def __init__(
        self,
        budget: float,
        cap: int,
        agree: Callable[[int], int] = lambda n: n,
        clock: Callable[[], float] = time.perf_counter,
        min_iters: int = 0,
        share: CpuShare | None = None,
        report: bool = True,
        curve: Sequence[tuple[int, float, float]] = (),
    ):
        self.budget, self.cap, self.agree, self.clock = budget, cap, agree, clock
        self.min_iters, self.share, self.report = min_iters, share, report
        self.curve = list(curve)
        self.max_iters, self.seconds = cap, 0.0
        self._session, self._plans = (0.0, 0, 0.0), 0  # (clock, iteration, seconds) at start
        self._checked = False
        self.machine: dict = {}

    def start(self, iteration: int) -> None:
        self._session, self._plans = (self.clock(), iteration, self.seconds), 0
        self._checked = False
        if self.share is not None:
            self.share.start()

    def after_step(self, iteration: int) -> bool:
        """Count the time; re-plan when due -> whether max_iters was re-planned."""
        start, first, before = self._session
        now = self.clock()
        self.seconds = before + now - start
        done = iteration - first
        if done < PLAN_EVERY or iteration % PLAN_EVERY:
            return False
        pace = (now - start) / done
        if self.budget:
            fit = iteration + int((self.budget - self.seconds) / pace)
            self.max_iters = self.agree(max(iteration, min(self.cap, fit)))
            self._plans += 1
            if self._plans == 1 and self.report:
                log.info(
                    "train.time_budget=%gs: %.3f s per step, planning %d steps",
                    self.budget, pace, self.max_iters,
                )  # fmt: skip
        if not self._checked and done >= CHECK_AFTER:  # past the slower first steps (warm-up)
            self._checked = True
            self._check_machine(pace)
        return bool(self.budget)

    def _check_machine(self, pace: float) -> None:
        """Say once per session when other processes slow the run, or when the time budget
        cannot reach the recipe's minimum number of steps."""
        m = {"step_seconds": round(pace, 4)}
        if self.share is not None:
            share = self.share.share()
            m.update(cpu_share=round(share, 3), busy=share < BUSY_SHARE)
            if m["busy"] and self.report:
                log.warning(busy_line(share))
        if self.budget:
            m["planned_iters"] = self.max_iters
            if self.min_iters and self.max_iters < self.min_iters:
                m["short"] = True
                if self.curve:
                    m["expected"] = expected_quality(self.curve, self.max_iters)
            if m.get("short") and self.report:
                log.warning(
                    "train.time_budget=%gs fits only %d steps at %.3f s per step, fewer than the "
                    "%d this recipe needs for its documented figures (train.budget_min_iters): "
                    "%s; a quiet machine or a longer train.time_budget gives the steps back",
                    self.budget, self.max_iters, pace, self.min_iters,
                    expectation(m.get("expected"), self.curve),
                )  # fmt: skip
        self.machine = m

    def state_dict(self) -> dict:
        return {"max_iters": self.max_iters, "train_seconds": self.seconds}

    def load_state_dict(self, state: dict) -> None:
        """A budgeted run goes on with its plan (within a changed cap) and its spent time."""
        self.seconds = state.get("train_seconds", 0.0)
        if self.budget:
            self.max_iters = min(state.get("max_iters", self.cap), self.cap)


def expected_quality(curve: Sequence[tuple[int, float, float]], steps: int) -> dict:
    """AP and MR^-2 a recipe is expected to reach in `steps` from its measured `curve` of
    (steps, AP, MR^-2), ascending steps: interpolated linearly in log(steps) between the measured
    counts; outside them the nearest measurement, as a bound ("at_most": fewer steps than any
    measured, "at_least": more)."""
    first, last = curve[0], curve[-1]
    if steps <= first[0] or steps >= last[0]:
        near = first if steps <= first[0] else last
        if steps == near[0]:
            bound = "about"
        else:
            bound = "at_most" if near is first else "at_least"
        return {"steps": steps, "ap": near[1], "mr": near[2], "bound": bound}
    (s0, ap0, mr0), (s1, ap1, mr1) = next(
        (a, b) for a, b in zip(curve, curve[1:]) if a[0] <= steps <= b[0]
    )
    w = (math.log(steps) - math.log(s0)) / (math.log(s1) - math.log(s0))
    ap, mr = ap0 + w * (ap1 - ap0), mr0 + w * (mr1 - mr0)
    return {"steps": steps, "ap": round(ap, 3), "mr": round(mr, 3), "bound": "about"}


def expectation(expected: dict | None, curve: Sequence[tuple[int, float, float]]) -> str:
    """The warning's words for `expected_quality` (or a plain "lower" without a curve)."""
    if expected is None:
        return "expect a lower AP and a higher MR^-2"
    words = {"about": "about", "at_most": "at most", "at_least": "at least"}[expected["bound"]]
    mr_words = {"about": "", "at_most": "at least ", "at_least": "at most "}[expected["bound"]]
    steps, ap, mr = curve[-1]
    return (
        f"expect {words} AP {expected['ap']:.2f} / MR^-2 {mr_words}{expected['mr']:.2f}, against "
        f"AP {ap:.2f} / MR^-2 {mr:.2f} at {steps} steps (the recipe's measured runs, "
        "train.budget_curve)"
    )
