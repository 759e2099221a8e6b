"""Small building blocks shared by backbones, necks and heads."""

from __future__ import annotations

from torch import nn


def conv_bn_act(
    cin: int, cout: int, k: int = 3, stride: int = 1, act: bool = True
) -> nn.Sequential:
    """Conv (no bias) + BatchNorm + ReLU."""
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """ResNet basic block without downsampling: x + conv-bn-relu-conv-bn, then ReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_act(channels, channels), conv_bn_act(channels, channels, act=False)
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.body(x)
        out += x  # in place: the BatchNorm's backward does not need its output
        return self.act(out)


class ConvBNAct(nn.Module):
    """Conv (no bias, `k // 2` padding) + BatchNorm + an activation, as `conv`, `bn`, `act`."""

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int = 1,
        stride: int = 1,
        act: nn.Module | None = None,
        eps: float = 1e-5,
        momentum: float = 0.1,
    ):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=eps, momentum=momentum)
        self.act = act if act is not None else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))
