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
        return self.act(x + self.body(x))
