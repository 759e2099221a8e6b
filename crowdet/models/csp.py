"""Cross-stage-partial blocks of CSPDarknet and PAFPN (YOLOv5 / YOLOX).

Module names follow YOLOX's (`conv1`, `conv2`, `conv3`, `m`), so its state dicts load as they
are. Every conv is conv + BatchNorm (eps 1e-3, momentum 0.03, as YOLOX) + SiLU.
"""

from __future__ import annotations

import torch
from torch import nn

from crowdet.models.layers import ConvBNAct


def csp_conv(cin: int, cout: int, k: int = 1, stride: int = 1) -> ConvBNAct:
    conv = ConvBNAct(cin, cout, k, stride, nn.SiLU(inplace=True), eps=1e-3, momentum=0.03)
    if k % 2 == 0:  # YOLOv5 v6's 6x6 stem conv: padding 2, like k // 2 - 1
        conv.conv.padding = (k // 2 - 1, k // 2 - 1)
    return conv


class Bottleneck(nn.Module):
    """1x1 conv, 3x3 conv, plus the input when `shortcut` (and the channels agree)."""

    def __init__(self, cin: int, cout: int, shortcut: bool = True):
        super().__init__()
        self.conv1 = csp_conv(cin, cout, 1)
        self.conv2 = csp_conv(cout, cout, 3)
        self.shortcut = shortcut and cin == cout

    def forward(self, x):
        y = self.conv2(self.conv1(x))
        return x + y if self.shortcut else y


class CSPLayer(nn.Module):
    """Two 1x1 branches of cout/2 channels, `n` bottlenecks on the first, concatenated and
    fused by a 1x1 conv (YOLOv5's C3)."""

    def __init__(self, cin: int, cout: int, n: int, shortcut: bool = True):
        super().__init__()
        hidden = cout // 2
        self.conv1 = csp_conv(cin, hidden, 1)
        self.conv2 = csp_conv(cin, hidden, 1)
        self.conv3 = csp_conv(2 * hidden, cout, 1)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut) for _ in range(n)))

    def forward(self, x):
        return self.conv3(torch.cat([self.m(self.conv1(x)), self.conv2(x)], dim=1))


class SPPF(nn.Module):
    """1x1 conv to cin/2, three 5x5 stride-1 max pools in a row, the four maps concatenated,
    1x1 conv to cout. Pools of 5 in a row see 5, 9, 13 pixels: the same as YOLOX's SPP with
    kernels 5, 9, 13 side by side, with the same parameters."""

    def __init__(self, cin: int, cout: int, k: int = 5):
        super().__init__()
        hidden = cin // 2
        self.conv1 = csp_conv(cin, hidden, 1)
        self.pool = nn.MaxPool2d(k, 1, k // 2)
        self.conv2 = csp_conv(4 * hidden, cout, 1)

    def forward(self, x):
        x = self.conv1(x)
        y1 = self.pool(x)
        y2 = self.pool(y1)
        return self.conv2(torch.cat([x, y1, y2, self.pool(y2)], dim=1))
