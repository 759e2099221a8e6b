"""A conv and its fixed BatchNorm run as one conv (crowdet.models.fold): the same outputs and
gradients as conv then norm, and ResNet's folded forward equals torchvision's block forward."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from crowdet.models.backbones.resnet import ResNet
from crowdet.models.fold import conv_norm, is_fixed


def randomise(norm: nn.Module, seed: int) -> None:
    """Statistics and affine terms away from 0 / 1, so each enters the fold."""
    g = torch.Generator().manual_seed(seed)
    n = norm.running_mean.numel()
    norm.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
    norm.running_var.copy_(torch.rand(n, generator=g) + 0.3)
    norm.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
    norm.bias.data.copy_(torch.randn(n, generator=g) * 0.5)


def close(got: torch.Tensor, want: torch.Tensor, rel: float = 1e-5) -> None:
    """Within `rel` of the reference's largest magnitude (float32 sums in another order)."""
    scale = want.abs().max().item()
    torch.testing.assert_close(got, want, rtol=rel, atol=rel * scale)


@pytest.mark.parametrize("frozen", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_norm_equals_conv_then_fixed_norm(frozen, bias):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 8, 3, stride=2, padding=1, bias=bias)
    norm = FrozenBatchNorm2d(8) if frozen else nn.BatchNorm2d(8).eval()
    randomise(norm, 1)
    assert is_fixed(norm)
    x = torch.randn(2, 6, 11, 9, requires_grad=True)
    got = conv_norm(x, conv, norm)
    got_grads = torch.autograd.grad((got * got).sum(), [x, *conv.parameters()])
    want = norm(conv(x))
    want_grads = torch.autograd.grad((want * want).sum(), [x, *conv.parameters()])
    close(got, want)
    for g, w in zip(got_grads, want_grads):
        close(g, w)
    if not frozen:  # the affine terms of an eval-mode BatchNorm are still trained
        (got_w, got_b), (want_w, want_b) = [
            torch.autograd.grad(conv_norm(x, conv, norm).sum() if f else norm(conv(x)).sum(),
                                [norm.weight, norm.bias])
            for f in (True, False)
        ]  # fmt: skip
        close(got_w, want_w), close(got_b, want_b)


def test_a_training_batchnorm_is_not_folded():
    torch.manual_seed(0)
    conv, norm = nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)
    x = torch.randn(2, 3, 5, 5) * 3 + 1
    assert not is_fixed(norm)
    out = conv_norm(x, conv, norm)
    # normalised with the batch's own statistics, which the running mean then moves towards
    torch.testing.assert_close(out.mean(dim=(0, 2, 3)), torch.zeros(4), atol=1e-5, rtol=0)
    assert norm.num_batches_tracked.item() == 1


def unfused(net: ResNet, x: torch.Tensor) -> list[torch.Tensor]:
    """The same modules through torchvision's own forward (conv, then norm)."""
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    c3 = net.layer2(net.layer1(x))
    c4 = net.layer3(c3)
    return [c3, c4, net.layer4(c4)]


@pytest.mark.parametrize("depth", [18, pytest.param(50, marks=pytest.mark.slow)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_resnet_frozen_bn_folded_outputs_and_grads_equal_unfused(depth, dtype):
    """float32: the features within 1e-5; float64 also the conv weights' gradients (in float32
    the features reach ~1e3 with these statistics, and the last-bit differences flip some
    ReLUs near 0, which moves single gradient entries)."""
    torch.manual_seed(0)
    net = ResNet(depth, "frozen_bn", 1, False, True).to(dtype)  # the stem frozen, as recipes do
    for i, m in enumerate(m for m in net.modules() if isinstance(m, FrozenBatchNorm2d)):
        randomise(m, i)
    x = torch.randn(2, 3, 32, 32, dtype=dtype)
    convs = [m.weight for m in net.modules() if isinstance(m, nn.Conv2d) and m.weight.requires_grad]
    results = []
    for forward in (net, lambda t: unfused(net, t)):
        feats = forward(x)
        weights = [torch.linspace(-1, 1, f.shape[1], dtype=dtype).view(1, -1, 1, 1) for f in feats]
        loss = sum((f * w).sum() for f, w in zip(feats, weights))
        results.append((feats, torch.autograd.grad(loss, convs)))
    (got, got_grads), (want, want_grads) = results
    for g, w in zip(got, want):
        close(g, w)
    if dtype == torch.float64:
        assert len(got_grads) > 10
        for g, w in zip(got_grads, want_grads):
            close(g, w)
