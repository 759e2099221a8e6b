"""What the machine gives a training run: the CPU, whether it runs bf16 natively (and why not),
and whether other processes share its cores.

bf16 autocast on the CPU is fast only where oneDNN has native bf16 instructions (AVX512-BF16 or
AMX, e.g. AMD Zen 4, Intel Sapphire Rapids); elsewhere bf16 is emulated and slower than fp32, so
crowdet trains in fp32 there and says so once, with the reason.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

log = logging.getLogger("crowdet.train")

BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo names of the native bf16 instructions
BUSY_SHARE = 0.75  # a run whose threads got a CPU less often over its first steps: busy


@dataclass(frozen=True)
class CpuInfo:
    model: str  # "AMD EPYC", "Intel(R) Core(TM) i7-1165G7 ..."
    cores: int  # cores this process may run on
    isa: str  # the instruction set PyTorch's CPU kernels use: "AVX512", "AVX2", ...
    bf16: bool  # oneDNN runs bf16 natively
    flags: frozenset[str] = field(default_factory=frozenset)

    def summary(self) -> str:
        return f"{self.model}, {self.cores} cores, {self.isa}"


def _cpuinfo_fields(path: Path = Path("/proc/cpuinfo")) -> tuple[str, frozenset[str]]:
    model, flags = "", frozenset()
    try:
        text = path.read_text()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not model:
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = frozenset(value.split())
    return model, flags


def cpu_info() -> CpuInfo:
    from crowdet.engine.amp import cpu_bf16_supported

    model, flags = _cpuinfo_fields()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    isa = torch.backends.cpu.get_cpu_capability()
    return CpuInfo(model or platform.processor() or "unknown CPU", cores, isa,
                   cpu_bf16_supported(), flags)  # fmt: skip


def precision_line(requested: str, effective: str, device: torch.device, cpu: CpuInfo) -> str:
    """One line: which autocast dtype the training runs in on `device`, and why."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"training on {name}: " + ("fp32" if effective == "off" else f"{effective} autocast")
    where = f"CPU {cpu.summary()}"
    if effective == "bf16":
        return f"{where}: native bf16 ({cpu.isa}): training with bf16 autocast"
    if requested == "off":
        return f"{where}: training in fp32 (train.amp=off)"
    if requested == "fp16":
        return f"{where}: training in fp32 (train.amp=fp16 needs a CUDA device)"
    has = [f for f in BF16_FLAGS if f in cpu.flags]
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    if has and limit:
        why = f"ONEDNN_MAX_CPU_ISA={limit} keeps oneDNN from its {'/'.join(has)} instructions"
    else:
        why = "this CPU has no native bf16 (no AVX512-BF16 or AMX instructions)"
    return f"{where}: training in fp32: {why}; bf16 would be emulated, slower than fp32"


def sched_times(task_dir: Path = Path("/proc/self/task")) -> dict[int, tuple[float, float]] | None:
    """Per thread of this process: (seconds on a CPU, seconds ready but waiting for one), from
    Linux's schedstat; None where the kernel does not give them."""
    out = {}
    try:
        for task in task_dir.iterdir():
            fields = (task / "schedstat").read_text().split()
            out[int(task.name)] = (int(fields[0]) / 1e9, int(fields[1]) / 1e9)
    except (OSError, ValueError, IndexError):
        return None
    return out


class CpuShare:
    """The share of the time this process's threads were ready to run that they got a CPU, since
    `start()`: about 1 on a quiet machine, 2/3 when three such threads share two cores. Measured
    from the run-queue waits (Linux schedstat); elsewhere estimated as CPU time over wall time x
    `threads` (lower when the run leaves cores idle, higher when OpenMP threads spin)."""

    def __init__(
        self,
        threads: int,
        wall: Callable[[], float] = time.perf_counter,
        cpu: Callable[[], float] = time.process_time,
        sched: Callable[[], dict | None] = sched_times,
    ):
        self.threads, self.wall, self.cpu, self.sched = max(1, threads), wall, cpu, sched
        self._start: tuple = (0.0, 0.0, None)

    def start(self) -> None:
        self._start = (self.wall(), self.cpu(), self.sched())

    def share(self) -> float:
        wall0, cpu0, sched0 = self._start
        now = self.sched() if sched0 is not None else None
        if now is not None:
            run = sum(r - sched0.get(t, (0.0, 0.0))[0] for t, (r, _) in now.items())
            wait = sum(w - sched0.get(t, (0.0, 0.0))[1] for t, (_, w) in now.items())
            return run / (run + wait) if run + wait > 0 else 1.0
        wall = self.wall() - wall0
        return (self.cpu() - cpu0) / (wall * self.threads) if wall > 0 else 1.0


def busy_line(share: float) -> str:
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (
        f"the machine is busy: over its first steps this run's threads got a CPU {share:.0%} of "
        f"the time they were ready to run (other processes took the rest{load}); it trains "
        "slower than this CPU allows"
    )
