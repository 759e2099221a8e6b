"""`crowdet info`: parameters, FLOPs and priors per image against hand-computed counts."""

from __future__ import annotations

import torch
from torch import nn

from crowdet.cli import main as cli_main
from crowdet.commands.info import count_flops, input_shape
from crowdet.config import load_config
from crowdet.models.build import build_detector


def test_the_flops_of_a_conv_are_two_per_multiply_add():
    conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
    # 8 outputs x 3 inputs x 3 x 3 taps at each of 16 x 24 output positions, 2 FLOPs each
    assert count_flops(conv, torch.zeros(1, 3, 32, 48)) == 2 * 8 * 3 * 9 * 16 * 24
    linear = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    assert count_flops(linear, torch.zeros(2, 3, 2, 2)) == 2 * 2 * 12 * 5


def test_input_shape_pads_a_4_by_3_image():
    data = load_config("configs/tiny.yaml").data  # letterbox to 160: 160 x 120 -> 160 x 128
    assert input_shape(data) == (128, 160)


def test_info_on_the_tiny_config(capsys):
    assert cli_main(["info", "configs/tiny.yaml"]) == 0
    out = capsys.readouterr().out
    model = build_detector(load_config("configs/tiny.yaml"))
    total = sum(p.numel() for p in model.parameters())
    assert f"parameters: {total / 1e6:.3f} M ({total:,})" in out
    # levels P3-P5 of a 128 x 160 input, 2 anchors per location
    assert "priors per image: 840" in out.splitlines()[-1]
    assert (16 * 20 + 8 * 10 + 4 * 5) * 2 == 840
    x = torch.zeros(1, 3, 128, 160)
    assert f"input 160x128 (W x H): {count_flops(model.eval(), x) / 1e9:.3f} GFLOPs" in out
