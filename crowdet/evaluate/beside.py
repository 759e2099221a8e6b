"""Run one function in a forked child process while the caller goes on with other work.

`Beside(fn, *args)` starts `fn(*args)` in a child made by fork (the arguments are inherited, not
copied through a pipe); `.result()` waits for it and returns its value, or raises the exception it
raised. Only the value travels back (pickled). Where fork is unavailable, on one CPU, or with
`enabled=False`, `fn` runs at once in this process and `.result()` hands back what it gave, so
callers read the same either way.

Used by `crowdet eval-dets` to read the ground truth beside the detections and to compute the JI
beside AP / MR^-2 on a multi-core machine (the CrowdDet evaluator runs ten processes).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from typing import Any


def can_fork() -> bool:
    """True where a child made by fork can work beside this process (Linux / macOS, 2+ CPUs)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return False
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        cpus = os.cpu_count() or 1
    return cpus > 1


def _child(conn, fn: Callable, args: tuple) -> None:
    try:
        out = ("ok", fn(*args))
    except BaseException as e:  # handed to the parent, which raises it
        out = ("error", e)
    try:
        conn.send(out)
    except Exception as e:  # a value or exception that does not pickle
        conn.send(("error", RuntimeError(f"{type(out[1]).__name__} could not be sent back: {e}")))
    conn.close()


class Beside:
    def __init__(self, fn: Callable, *args: Any, enabled: bool = True):
        self._proc = None
        if not (enabled and can_fork()):
            try:
                self._out = ("ok", fn(*args))
            except Exception as e:
                self._out = ("error", e)
            return
        ctx = multiprocessing.get_context("fork")
        self._conn, child_conn = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_child, args=(child_conn, fn, args), daemon=True)
        self._proc.start()
        child_conn.close()

    def result(self) -> Any:
        if self._proc is not None:
            try:
                self._out = self._conn.recv()
            except EOFError:  # the child died without a word (killed, out of memory)
                self._out = ("error", RuntimeError(f"the child process {self._proc.pid} died"))
            self._proc.join()
            self._conn.close()
            self._proc = None
        status, value = self._out
        if status == "error":
            raise value
        return value
