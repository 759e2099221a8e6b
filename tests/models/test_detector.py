"""The assembled detector: the channels-last layout changes memory order only, not results."""

from __future__ import annotations

import torch

from crowdet.config import load_config
from crowdet.models.build import build_detector


def test_channels_last_gives_the_same_outputs_and_gradients():
    torch.manual_seed(0)
    plain = build_detector(load_config("configs/tiny.yaml"))
    nhwc = build_detector(load_config("configs/tiny.yaml", ["model.channels_last=true"]))
    nhwc.load_state_dict(plain.state_dict())
    conv = next(
        m for m in nhwc.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] > 1
    )
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()
    images = torch.randn(2, 3, 64, 96)
    out_plain, out_nhwc = plain(images), nhwc(images)
    for a, b in zip(out_plain, out_nhwc):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    for out in (out_plain, out_nhwc):
        (out[0].square().sum() + out[1].square().sum()).backward()
    for (name, p), q in zip(plain.named_parameters(), nhwc.parameters()):
        scale = float(p.grad.abs().max())  # sums in another order: equal up to float rounding
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5 * scale, msg=name)
