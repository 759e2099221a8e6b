"""What the machine gives a run: the precision line names the real reason for fp32, the share of
the time its threads got a CPU is measured from the run-queue waits, and a busy machine or a time
budget too short for the recipe is said at the start."""

import logging

import pytest
import torch
from engine_helpers import tiny_config

from crowdet.commands.demo import machine_warnings
from crowdet.engine import hardware as H
from crowdet.engine.budget import (
    CHECK_AFTER,
    PLAN_EVERY,
    TimeBudget,
    expectation,
    expected_quality,
)
from crowdet.engine.trainer import Trainer

CPU = torch.device("cpu")


def cpu(bf16: bool, flags=()):
    return H.CpuInfo("Test CPU", 2, "AVX512" if bf16 else "AVX2", bf16, frozenset(flags))


def test_precision_line_names_the_missing_instructions_not_cuda(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    line = H.precision_line("bf16", "off", CPU, cpu(False, ["avx2", "fma"]))
    assert "fp32" in line and "no native bf16 (no AVX512-BF16 or AMX" in line
    assert "CUDA" not in line and "Test CPU, 2 cores, AVX2" in line
    line = H.precision_line("bf16", "bf16", CPU, cpu(True, ["avx512_bf16"]))
    assert "native bf16 (AVX512): training with bf16 autocast" in line
    assert "train.amp=off" in H.precision_line("off", "off", CPU, cpu(True))
    assert "needs a CUDA device" in H.precision_line("fp16", "off", CPU, cpu(True))


def test_precision_line_names_an_isa_limit_on_a_bf16_cpu(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    line = H.precision_line("bf16", "off", CPU, cpu(False, ["avx512_bf16", "amx_bf16"]))
    assert "ONEDNN_MAX_CPU_ISA=AVX2 keeps oneDNN from its avx512_bf16/amx_bf16" in line


def test_cpuinfo_fields_read_model_and_flags(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 fma\n\n"
        "processor\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 fma\n"
    )
    model, flags = H._cpuinfo_fields(f)
    assert model == "AMD EPYC" and flags == {"fpu", "avx2", "fma"}
    assert H._cpuinfo_fields(tmp_path / "missing") == ("", frozenset())


def test_cpu_info_agrees_with_torch():
    info = H.cpu_info()
    assert info.isa == torch.backends.cpu.get_cpu_capability() and info.cores >= 1


class FakeClocks:
    """Each step takes `step` wall seconds; the run's threads get `run` CPU seconds of it and
    wait `wait` seconds for a CPU (schedstat), or use `cpu` CPU seconds (without schedstat)."""

    def __init__(self, step: float, run: float = 0.0, wait: float = 0.0, cpu: float = 0.0):
        self.step, self.run, self.wait, self.cpu, self.n = step, run, wait, cpu, 0

    def wall_now(self):
        return self.n * self.step

    def cpu_now(self):
        return self.n * self.cpu

    def sched_now(self):  # two threads, sharing the run and wait time
        half = (self.n * self.run / 2, self.n * self.wait / 2)
        return {1: half, 2: half}


def run_budget(clocks, budget=1000.0, min_iters=0, steps=CHECK_AFTER, schedstat=True, report=True):
    sched = clocks.sched_now if schedstat else (lambda: None)
    share = H.CpuShare(2, wall=clocks.wall_now, cpu=clocks.cpu_now, sched=sched)
    b = TimeBudget(
        budget, 10_000, clock=clocks.wall_now, min_iters=min_iters, share=share, report=report
    )
    b.start(0)
    for i in range(1, steps + 1):
        clocks.n = i
        b.after_step(i)
    return b


def test_a_run_whose_threads_get_a_cpu_is_not_busy(caplog):
    # 1.9 s on a CPU and 0.1 s waiting for one per step: 95 %
    with caplog.at_level(logging.WARNING):
        b = run_budget(FakeClocks(1.0, run=1.9, wait=0.1))
    assert b.machine["cpu_share"] == pytest.approx(0.95) and not b.machine["busy"]
    assert b.machine["planned_iters"] == 1000 and "busy" not in caplog.text


def test_a_run_whose_threads_wait_for_a_cpu_is_told_the_machine_is_busy(caplog):
    with caplog.at_level(logging.WARNING):
        b = run_budget(FakeClocks(1.0, run=1.2, wait=0.8))  # 60 % of the ready time
    assert b.machine["busy"] and b.machine["cpu_share"] == pytest.approx(0.6)
    assert "the machine is busy: over its first steps this run's threads got a CPU 60%" in (
        caplog.text
    )


def test_without_schedstat_the_share_is_cpu_time_over_wall_time_and_threads(caplog):
    with caplog.at_level(logging.WARNING):
        quiet = run_budget(FakeClocks(1.0, cpu=1.8), schedstat=False)
        busy = run_budget(FakeClocks(1.0, cpu=0.9), schedstat=False)
    assert quiet.machine["cpu_share"] == pytest.approx(0.9) and not quiet.machine["busy"]
    assert busy.machine["cpu_share"] == pytest.approx(0.45) and busy.machine["busy"]


def test_threads_that_start_after_the_first_look_count_from_zero():
    before = {1: (1.0, 1.0)}
    after = {1: (2.0, 1.0), 7: (1.0, 0.0)}  # thread 7 started since
    looks = iter([before, after])
    share = H.CpuShare(2, sched=lambda: next(looks))
    share.start()
    assert share.share() == pytest.approx(2.0 / 2.0)
    looks = iter([before, {1: (1.5, 1.5)}])
    share = H.CpuShare(2, sched=lambda: next(looks))
    share.start()
    assert share.share() == pytest.approx(0.5)


def test_this_process_reads_its_own_schedstat():
    times = H.sched_times()
    if times is None:
        pytest.skip("this kernel gives no /proc/self/task/*/schedstat")
    assert times and all(run >= 0 and wait >= 0 for run, wait in times.values())


def test_a_budget_below_the_recipe_minimum_is_said_with_its_figures(caplog):
    with caplog.at_level(logging.WARNING):
        b = run_budget(FakeClocks(0.5, run=1.0), budget=100.0, min_iters=500)
    assert b.max_iters == 200 and b.machine["short"]
    assert "fits only 200 steps at 0.500 s per step, fewer than the 500" in caplog.text
    assert b.machine["step_seconds"] == 0.5
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        b = run_budget(FakeClocks(0.5, run=1.0), budget=100.0, min_iters=150)
    assert "short" not in b.machine and "fewer than" not in caplog.text


def test_a_ddp_rank_other_than_0_finds_the_same_and_says_nothing(caplog):
    # every rank plans and checks; only rank 0 (report=True) writes the warnings
    with caplog.at_level(logging.INFO):
        b = run_budget(FakeClocks(0.5, run=0.5, wait=1.5), budget=100.0, min_iters=500,
                       report=False)  # fmt: skip
    assert b.max_iters == 200 and b.machine["short"] and b.machine["busy"]
    assert caplog.text == ""
    with caplog.at_level(logging.INFO):
        run_budget(FakeClocks(0.5, run=0.5, wait=1.5), budget=100.0, min_iters=500)
    assert "fits only 200 steps" in caplog.text and "the machine is busy" in caplog.text
    assert "planning 200 steps" in caplog.text


def test_the_machine_is_checked_after_the_first_steps_not_before(caplog):
    # the first steps are slow (warm-up): 2 s, then 0.5 s; checked at CHECK_AFTER steps
    clocks = FakeClocks(0.5, run=1.0)
    share = H.CpuShare(2, wall=lambda: clocks.t, cpu=lambda: 0.0, sched=clocks.sched_now)
    b = TimeBudget(1000.0, 10_000, clock=lambda: clocks.t, min_iters=1500, share=share)
    clocks.t = 0.0
    b.start(0)
    for i in range(1, CHECK_AFTER + 1):
        clocks.n, clocks.t = i, clocks.t + (2.0 if i <= PLAN_EVERY else 0.5)
        b.after_step(i)
        assert bool(b.machine) == (i >= CHECK_AFTER)
    assert b.machine["step_seconds"] == pytest.approx(0.8)  # (20 x 2 + 80 x 0.5) / 100


def test_the_machine_is_checked_once_without_a_budget_too(caplog):
    with caplog.at_level(logging.WARNING):
        b = run_budget(FakeClocks(1.0, run=0.5, wait=1.5), budget=0.0, steps=3 * CHECK_AFTER)
    assert b.max_iters == 10_000 and b.machine["busy"]
    assert caplog.text.count("the machine is busy") == 1


def test_a_trainer_says_its_precision_and_keeps_the_machine_check(tmp_path, tiny_data, caplog):
    cfg = tiny_config(tiny_data, "train.max_iters=2", "train.amp=bf16")
    with caplog.at_level(logging.INFO, logger="crowdet.train"):
        trainer = Trainer(cfg, tmp_path, progress=False)
    assert H.precision_line("bf16", trainer.amp, CPU, H.cpu_info()) in caplog.text
    assert trainer.budget.share is not None and trainer.budget.share.threads >= 1


CURVE = [(100, 0.5, 0.8), (400, 0.7, 0.6)]


def test_the_expected_quality_is_interpolated_in_log_steps_and_bounded_outside():
    # 200 steps lie halfway between 100 and 400 in log(steps)
    assert expected_quality(CURVE, 200) == {"steps": 200, "ap": 0.6, "mr": 0.7, "bound": "about"}
    assert expected_quality(CURVE, 100)["bound"] == "about"
    low, high = expected_quality(CURVE, 50), expected_quality(CURVE, 800)
    assert (low["ap"], low["mr"], low["bound"]) == (0.5, 0.8, "at_most")
    assert (high["ap"], high["mr"], high["bound"]) == (0.7, 0.6, "at_least")
    assert "at most AP 0.50 / MR^-2 at least 0.80" in expectation(low, CURVE)


def test_a_short_plan_says_what_the_measured_curve_expects(caplog):
    # 100 s at 0.5 s per step: 200 steps, below the recipe's 300
    clock = [0.0]
    with caplog.at_level(logging.WARNING):
        b = TimeBudget(100.0, 10_000, clock=lambda: clock[0], min_iters=300, curve=CURVE)
        b.start(0)
        for i in range(1, CHECK_AFTER + 1):
            clock[0] = i * 0.5
            b.after_step(i)
    assert b.machine["expected"] == {"steps": 200, "ap": 0.6, "mr": 0.7, "bound": "about"}
    assert "fits only 200 steps" in caplog.text
    assert "expect about AP 0.60 / MR^-2 0.70, against AP 0.70 / MR^-2 0.60 at 400 steps" in (
        caplog.text
    )
    lines = machine_warnings(b.machine, 300, CURVE)
    assert lines == [
        "the time budget fitted 200 steps, fewer than the 300 the demo recipe needs for the "
        "README's figures: expect about AP 0.60 / MR^-2 0.70, against AP 0.70 / MR^-2 0.60 at "
        "400 steps (the recipe's measured runs, train.budget_curve)"
    ]
