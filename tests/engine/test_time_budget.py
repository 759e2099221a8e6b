"""train.time_budget: the schedule is fitted to the time from the pace of the steps so far (a fake
clock of 0.5 s per step makes the plan exact), capped by max_iters, and survives a resume."""

import logging

import pytest
from engine_helpers import state_of, stop_after, tiny_config

from crowdet.engine.budget import PLAN_EVERY
from crowdet.engine.optim import lr_factor
from crowdet.engine.trainer import Trainer

SECONDS_PER_STEP = 0.5


def budget_trainer(run, data, *extra, resume=False):
    cfg = tiny_config(data, "train.checkpoint_interval=0", "train.log_interval=5", *extra)
    trainer = Trainer(cfg, run, progress=False)
    if resume:
        trainer.resume(run / "last.pt")
    trainer.budget.clock = lambda: trainer.iter * SECONDS_PER_STEP
    return trainer


def test_the_schedule_is_fitted_to_the_budget(tmp_path, tiny_data, caplog):
    # 30 s at 0.5 s per step: 60 steps, the learning rate ending on the cosine floor
    trainer = budget_trainer(tmp_path, tiny_data, "train.time_budget=30", "train.max_iters=1000")
    lrs = []
    original = trainer._periodic
    trainer._periodic = lambda: (lrs.append(trainer._lr()), original())
    with caplog.at_level(logging.INFO):
        trainer.train(final_eval=False)
    assert trainer.iter == trainer.max_iters == 60
    assert "time_budget=30s: 0.500 s per step, planning 60 steps" in caplog.text
    t = trainer.cfg.train
    # planned after step PLAN_EVERY (whose schedule step had run towards max_iters), then
    # towards 60
    want = [t.lr * lr_factor(s, t, 1000 if s <= PLAN_EVERY else 60) for s in range(1, 61)]
    assert lrs == pytest.approx(want, rel=1e-6)
    assert lrs[-1] == pytest.approx(t.lr * t.min_lr_ratio)
    state = state_of(tmp_path / "last.pt")
    assert state["max_iters"] == 60 and state["train_seconds"] == pytest.approx(30.0)


def test_max_iters_caps_the_plan_and_a_spent_budget_stops(tmp_path, tiny_data):
    trainer = budget_trainer(
        tmp_path / "a", tiny_data, "train.time_budget=1e6", "train.max_iters=24"
    )
    trainer.train(final_eval=False)
    assert trainer.iter == 24
    # 20 steps already took 10 s of a 4-s budget: the first plan ends the run there
    trainer = budget_trainer(
        tmp_path / "b", tiny_data, "train.time_budget=4", "train.max_iters=100"
    )
    trainer.train(final_eval=False)
    assert trainer.iter == PLAN_EVERY


def test_a_resumed_budgeted_run_keeps_its_plan_and_its_clock(tmp_path, tiny_data, monkeypatch):
    extra = ("train.time_budget=30", "train.max_iters=1000")
    stop_after(monkeypatch, 30)
    budget_trainer(tmp_path, tiny_data, *extra).train(final_eval=False)
    half = state_of(tmp_path / "last.pt")
    assert (half["iter"], half["max_iters"], half["train_seconds"]) == (30, 60, 15.0)
    monkeypatch.undo()
    trainer = budget_trainer(tmp_path, tiny_data, *extra, resume=True)
    assert (trainer.max_iters, trainer.budget.seconds) == (60, 15.0)
    trainer.train(final_eval=False)
    assert trainer.iter == 60 and trainer.budget.seconds == pytest.approx(30.0)


def test_a_cpu_clock_budget_counts_the_compute_not_the_waiting(tmp_path, tiny_data):
    import time

    from crowdet.engine.budget import TimeBudget

    trainer = Trainer(tiny_config(tiny_data, "train.budget_clock=cpu"), tmp_path, progress=False)
    assert trainer.budget.clock is time.process_time
    # steps that wait 10 ms for a core (a sleep: no CPU time): a 1-s wall budget plans about 100
    # steps, a 1-s CPU budget many more (up to its cap)
    plans = {}
    for name, clock in (("wall", time.perf_counter), ("cpu", time.process_time)):
        budget = TimeBudget(1.0, cap=100_000, clock=clock)
        budget.start(0)
        for it in range(1, PLAN_EVERY + 1):
            time.sleep(0.01)
            budget.after_step(it)
        plans[name] = budget.max_iters
    assert plans["wall"] < 110 and plans["cpu"] > 1000
