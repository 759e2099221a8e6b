"""Mixed precision choices: fp32 on the CPU unless it runs bf16 natively; the scaler only for
fp16."""

import torch

from crowdet.engine import amp

CPU = torch.device("cpu")
CUDA = torch.device("cuda", 0)


def test_cpu_runs_fp32_unless_it_has_native_bf16():
    assert amp.effective_mode("fp16", CPU) == "off"
    native = amp.cpu_bf16_supported()
    assert amp.effective_mode("bf16", CPU) == ("bf16" if native else "off")
    assert amp.effective_mode("off", CPU) == "off"
    assert amp.effective_mode("fp16", CUDA) == "fp16"  # decided without touching the device


def test_bf16_autocast_computes_in_bf16():
    a = torch.randn(4, 4)
    with amp.autocast("bf16", CPU):
        assert (a @ a).dtype == torch.bfloat16


def test_autocast_off_changes_nothing():
    a = torch.randn(4, 4)
    with amp.autocast("off", CPU):
        assert (a @ a).dtype == torch.float32


def test_scaler_enabled_for_fp16_only():
    assert not amp.grad_scaler("off", CPU).is_enabled()
    assert amp.grad_scaler("off", CPU).state_dict() == {}
    x = torch.ones(1, requires_grad=True)
    assert amp.grad_scaler("off", CPU).scale(x * 3) == 3  # identity when disabled
