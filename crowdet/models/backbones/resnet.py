"""ResNet-18/34/50/101 (He et al. 2016) from torchvision's constructors, as C3-C5 features.

The modules keep torchvision's names (`conv1`, `bn1`, `layer1` ... `layer4`; the classifier is
dropped), so torchvision's ImageNet state dicts load as they are (crowdet.models.pretrained).
Outputs: C3, C4, C5 of layer2-4, strides 8, 16, 32, with 128, 256, 512 channels (depth 18, 34)
or 512, 1024, 2048 (depth 50, 101). Stages for `frozen_stages`: the stem (conv1 + bn1), then
layer1 ... layer4.
"""

from __future__ import annotations

from typing import Literal

import torch
import torchvision
from pydantic import Field
from torch import nn
from torchvision.models.resnet import Bottleneck
from torchvision.ops import FrozenBatchNorm2d

from crowdet.config_base import Variant
from crowdet.models.backbones.base import Backbone
from crowdet.models.fold import conv_norm

CONSTRUCTORS = {
    18: torchvision.models.resnet18,
    34: torchvision.models.resnet34,
    50: torchvision.models.resnet50,
    101: torchvision.models.resnet101,
}


class ResNetConfig(Variant):
    name: Literal["resnet"] = "resnet"
    depth: Literal[18, 34, 50, 101] = 50
    # frozen_bn: BatchNorm with fixed statistics and affine parameters (torchvision.ops
    # .FrozenBatchNorm2d), the usual choice when fine-tuning ImageNet weights at small batches
    norm: Literal["frozen_bn", "bn"] = "bn"
    # stem and stages (0-5: none, stem, stem + layer1, ...) whose weights are not trained
    frozen_stages: int = Field(0, ge=0, le=5)
    norm_eval: bool = False  # BatchNorm keeps its running statistics while training
    # pretrained weights: a torchvision weights name (`ResNet50_Weights.IMAGENET1K_V1`, fetched
    # by torchvision when a training run starts) or a local state dict file; null: random init
    weights: str | None = None
    rgb: bool = True  # the network sees RGB (torchvision's ImageNet weights were trained so)


# the fixed-depth names of the same backbone (`model.backbone.name: resnet50`): `resnet` with
# that depth
class ResNet18Config(ResNetConfig):
    name: Literal["resnet18"] = "resnet18"
    depth: Literal[18] = 18


class ResNet34Config(ResNetConfig):
    name: Literal["resnet34"] = "resnet34"
    depth: Literal[34] = 34


class ResNet50Config(ResNetConfig):
    name: Literal["resnet50"] = "resnet50"
    depth: Literal[50] = 50


class ResNet101Config(ResNetConfig):
    name: Literal["resnet101"] = "resnet101"
    depth: Literal[101] = 101


class ResNet(Backbone):
    def __init__(self, depth: int, norm: str, frozen_stages: int, norm_eval: bool, rgb: bool):
        super().__init__()
        norm_layer = FrozenBatchNorm2d if norm == "frozen_bn" else nn.BatchNorm2d
        net = CONSTRUCTORS[depth](weights=None, norm_layer=norm_layer)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3
        self.layer4 = net.layer4
        width = 4 if depth >= 50 else 1  # bottleneck expansion
        self.out_channels = [128 * width, 256 * width, 512 * width]
        self.out_strides = [8, 16, 32]
        self.input_rgb = rgb
        stem = nn.ModuleList([self.conv1, self.bn1])
        stages = [stem, self.layer1, self.layer2, self.layer3, self.layer4]
        self.freeze(stages, frozen_stages, norm_eval)

    @classmethod
    def from_config(cls, cfg: ResNetConfig) -> ResNet:
        return cls(cfg.depth, cfg.norm, cfg.frozen_stages, cfg.norm_eval, cfg.rgb)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> [C3 (B, out_channels[0], H/8, W/8), C4, C5]. torchvision's blocks
        with each conv and its fixed BatchNorm run as one conv (crowdet.models.fold)."""
        x = self.maxpool(self.relu(conv_norm(x, self.conv1, self.bn1)))
        feats = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer:
                x = run_block(block, x)
            feats.append(x)
        return feats[1:]


def run_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """torchvision's BasicBlock / Bottleneck forward, each conv + norm through conv_norm."""
    out = x
    pairs = [(block.conv1, block.bn1), (block.conv2, block.bn2)]
    if isinstance(block, Bottleneck):
        pairs.append((block.conv3, block.bn3))
    for i, (conv, norm) in enumerate(pairs):
        out = conv_norm(out, conv, norm)
        if i < len(pairs) - 1:
            out = block.relu(out)
    if block.downsample is not None:
        x = conv_norm(x, block.downsample[0], block.downsample[1])
    out += x  # in place, as torchvision's blocks: a convolution's backward does not need its output
    return block.relu(out)
