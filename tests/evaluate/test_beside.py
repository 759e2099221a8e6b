"""Work in a forked child beside the caller: the same values and errors as run in-process."""

from __future__ import annotations

import os

import numpy as np
import pytest
from eval_scenes import random_set

from crowdet.errors import DataError
from crowdet.evaluate import evaluate
from crowdet.evaluate.beside import Beside, can_fork

needs_fork = pytest.mark.skipif(not can_fork(), reason="needs fork and 2+ CPUs")


def _pid_and_square(x):
    return os.getpid(), x * x


def _fail(path):
    raise DataError("malformed JSON line", path, 7)


@needs_fork
def test_runs_in_a_child_and_returns_its_value():
    pid, value = Beside(_pid_and_square, np.arange(4)).result()
    assert pid != os.getpid()
    np.testing.assert_array_equal(value, [0, 1, 4, 9])


def test_disabled_runs_here():
    pid, value = Beside(_pid_and_square, 3, enabled=False).result()
    assert (pid, value) == (os.getpid(), 9)


@pytest.mark.parametrize("enabled", [True, False])
def test_an_error_reaches_the_caller_with_its_message(enabled):
    job = Beside(_fail, "gt.odgt", enabled=enabled)
    with pytest.raises(DataError, match=r"^gt\.odgt:7: malformed JSON line$"):
        job.result()


@needs_fork
def test_a_child_that_dies_is_an_error():
    job = Beside(os._exit, 3)
    with pytest.raises(RuntimeError, match="died"):
        job.result()


@needs_fork
def test_parallel_evaluation_equals_the_serial_one():
    gt, dets = random_set(30, seed=3, people=10, dets=30)
    serial = evaluate(gt, dets, "full", coco=True)
    parallel = evaluate(gt, dets, "full", coco=True, parallel=True)
    assert 0.05 < serial.JI < 0.95
    assert (parallel.AP, parallel.MR, parallel.JI) == (serial.AP, serial.MR, serial.JI)
    np.testing.assert_array_equal(parallel.ji_curve, serial.ji_curve)
    assert parallel.coco == serial.coco
