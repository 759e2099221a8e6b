"""Mixed precision: autocast on CUDA (bf16, or fp16 with a GradScaler), bf16 autocast on CPUs with
native bf16 instructions (AVX512-BF16 / AMX: about twice the fp32 speed); fp32 everywhere else."""

from __future__ import annotations

import contextlib
import logging

import torch

log = logging.getLogger(__name__)

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_bf16_supported() -> bool:
    """True when oneDNN runs bf16 natively on this CPU (else bf16 is emulated and slow)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def effective_mode(mode: str, device: torch.device) -> str:
    """`mode` ('off' | 'bf16' | 'fp16') on CUDA; on the CPU 'bf16' where the CPU runs it natively;
    otherwise 'off' (fp32; `hardware.precision_line` says why)."""
    if mode == "bf16" and device.type == "cpu" and cpu_bf16_supported():
        return mode
    return mode if device.type == "cuda" else "off"


def autocast(mode: str, device: torch.device):
    """The forward-pass context for `mode` (a no-op when 'off')."""
    if mode == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[mode])


def grad_scaler(mode: str, device: torch.device) -> torch.amp.GradScaler:
    """A GradScaler, enabled only for fp16 (its state dict is empty when disabled)."""
    return torch.amp.GradScaler(device.type, enabled=mode == "fp16")
