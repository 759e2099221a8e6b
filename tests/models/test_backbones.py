"""Backbones: parameter counts against published figures, features against torchvision's own
ResNet, training on a 2-image batch, and what frozen stages / frozen BN / norm_eval keep fixed."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops import FrozenBatchNorm2d

from crowdet.models.backbones.cspdarknet import CSPDarknet, Focus
from crowdet.models.backbones.darknet import Darknet53
from crowdet.models.backbones.resnet import ResNet
from crowdet.models.csp import SPPF, csp_conv
from crowdet.models.necks.pafpn import PAFPN
from crowdet.models.necks.yolov3 import YOLOv3Neck


def count(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def conv_params(cin: int, cout: int, k: int, bn: bool) -> int:
    """A k x k conv with BatchNorm (weight + bias, no conv bias) or with a bias."""
    return cin * cout * k * k + (2 * cout if bn else cout)


@pytest.mark.parametrize("depth", [18, 34, 50, 101])
def test_resnet_has_torchvisions_parameters_less_the_classifier(depth):
    tv = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    assert count(ResNet(depth, "bn", 0, False, True)) == count(tv) - count(tv.fc)


def test_resnet_features_are_torchvisions_layer2_to_4():
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(weights=None).eval()
    ours = ResNet(18, "bn", 0, False, True).eval()
    ours.load_state_dict({k: v for k, v in tv.state_dict().items() if not k.startswith("fc.")})
    getter = IntermediateLayerGetter(tv, {"layer2": "c3", "layer3": "c4", "layer4": "c5"})
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        want, got = list(getter(x).values()), ours(x)
    for g, w, c, s in zip(got, want, ours.out_channels, ours.out_strides):
        assert g.shape == (2, c, 96 // s, 64 // s)
        # crowdet runs each conv with its eval-mode BatchNorm folded in: float32 sums in
        # another order
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5 * w.abs().max().item())


def test_darknet53_trunk_has_40_6_million_parameters():
    # 40,584,928: the Darknet-53 trunk (YOLOv3 paper, Table 2 less its classifier), as
    # mmdetection's Darknet(depth=53) counts it
    assert count(Darknet53(0, False, True)) == 40_584_928


def yolov3_head(channels: list[int], num_classes: int) -> int:
    """YOLOv3's output layers per level: a 3x3 conv-BN to 2c, a 1x1 conv with bias to
    3 anchors x (4 box + 1 objectness + classes)."""
    out = 3 * (5 + num_classes)
    return sum(conv_params(c, 2 * c, 3, True) + conv_params(2 * c, out, 1, False) for c in channels)


def test_yolov3_darknet53_has_the_published_parameter_count():
    """61,949,149 with 80 classes: ultralytics' YOLOv3 model summary (darknet's yolov3.cfg);
    about 61.5 M with one class."""
    trunk = Darknet53(0, False, True)
    neck = YOLOv3Neck(trunk.out_channels, trunk.out_strides, [128, 256, 512])
    assert count(trunk, neck) + yolov3_head([128, 256, 512], 80) == 61_949_149
    assert count(trunk, neck) + yolov3_head([128, 256, 512], 1) == pytest.approx(61.5e6, abs=5e4)


def yolox_head(channels: list[int], width: float, num_classes: int) -> int:
    """YOLOX's decoupled head per level: a 1x1 stem to 256w, two 3x3 convs in each of the cls
    and box branches, 1x1 predictions with bias for the classes, 4 box values, objectness."""
    h = int(256 * width)
    per_level = [conv_params(c, h, 1, True) + 4 * conv_params(h, h, 3, True) for c in channels]
    preds = sum(conv_params(h, n, 1, False) for n in (num_classes, 4, 1)) * len(channels)
    return sum(per_level) + preds


@pytest.mark.parametrize(
    "variant, depth, width, millions",
    [("s", 0.33, 0.50, 8.97), ("m", 0.67, 0.75, 25.3), ("l", 1.0, 1.0, 54.2)],
)
def test_yolox_has_the_published_parameter_count(variant, depth, width, millions):
    """YOLOX README (Megvii-BaseDetection/YOLOX, 80 classes): YOLOX-s 9.0 M (8.97 M in its
    model summary), YOLOX-m 25.3 M, YOLOX-l 54.2 M."""
    trunk = CSPDarknet(depth, width, "yolox", "focus", 0, False, False)
    neck = PAFPN(trunk.out_channels, trunk.out_strides, depth)
    total = count(trunk, neck) + yolox_head(trunk.out_channels, width, 80)
    assert total == pytest.approx(millions * 1e6, abs=0.05e6)


def test_yolov5s_v6_has_the_published_parameter_count():
    """7,235,389: ultralytics' YOLOv5s v6 model summary (80 classes; 6x6 stem conv, SPPF after
    the last CSP block, 1x1 output convs to 3 x 85)."""
    trunk = CSPDarknet(0.33, 0.5, "yolov5", "conv", 0, False, False)
    neck = PAFPN(trunk.out_channels, trunk.out_strides, 0.33)
    head = sum(conv_params(c, 255, 1, False) for c in trunk.out_channels)
    assert count(trunk, neck) + head == 7_235_389


def test_sppf_equals_spp_with_pools_5_9_13():
    torch.manual_seed(0)
    sppf = SPPF(8, 6).eval()
    x = torch.randn(2, 8, 13, 11)
    with torch.no_grad():
        y = sppf.conv1(x)
        pools = [nn.functional.max_pool2d(y, k, 1, k // 2) for k in (5, 9, 13)]
        want = sppf.conv2(torch.cat([y, *pools], dim=1))
        torch.testing.assert_close(sppf(x), want)


def test_focus_stacks_each_2x2_cell_top_left_bottom_left_top_right_bottom_right():
    focus = Focus(1, 4, 1)
    focus.conv = nn.Identity()
    x = torch.arange(16.0).view(1, 1, 4, 4)
    out = focus(x)
    assert out[0, :, 0, 0].tolist() == [0.0, 4.0, 1.0, 5.0]
    assert out[0, :, 1, 1].tolist() == [10.0, 14.0, 11.0, 15.0]


def test_the_yolov5_stem_conv_halves_the_image():
    assert csp_conv(3, 8, 6, 2)(torch.randn(1, 3, 64, 96)).shape == (1, 8, 32, 48)


BACKBONES = {
    "resnet18": lambda: ResNet(18, "bn", 0, False, True),
    "darknet53": lambda: Darknet53(0, False, True),
    "cspdarknet_yolox": lambda: CSPDarknet(0.33, 0.25, "yolox", "focus", 0, False, False),
    "cspdarknet_yolov5": lambda: CSPDarknet(0.33, 0.25, "yolov5", "conv", 0, False, False),
}


@pytest.mark.parametrize(
    "name", [n if n != "darknet53" else pytest.param(n, marks=pytest.mark.slow) for n in BACKBONES]
)
def test_backbone_trains_on_a_two_image_batch(name):
    """C3-C5 at strides 8/16/32 with the documented channels; each output depends on the
    image (a pixel changes it) and every parameter gets a gradient."""
    torch.manual_seed(0)
    model = BACKBONES[name]().train()
    x = torch.randn(2, 3, 64, 32)
    feats = model(x)
    assert [f.shape for f in feats] == [
        (2, c, 64 // s, 32 // s) for c, s in zip(model.out_channels, model.out_strides)
    ]
    sum(f.square().mean() for f in feats).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert no_grad == []
    model.eval()
    with torch.no_grad():
        y = x.clone()
        y[1, :, 20, 10] += 5.0  # the second image only
        a, b = model(x), model(y)
    for fa, fb in zip(a, b):
        assert torch.equal(fa[0], fb[0]) and not torch.equal(fa[1], fb[1])


def sgd_step(model: nn.Module) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.1)
    model.train()
    sum(f.mean() for f in model(torch.randn(2, 3, 32, 32))).backward()
    opt.step()


def snapshot(module: nn.Module) -> dict:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_frozen_bn_keeps_every_statistic_and_affine_term():
    torch.manual_seed(0)
    model = ResNet(18, "frozen_bn", 0, False, True)
    norms = [m for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert len(norms) == 20 and not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    for m in norms:  # away from identity so that a change would show
        m.running_var.uniform_(0.5, 2.0)
    before = snapshot(model)
    sgd_step(model)
    after = model.state_dict()
    for k, v in before.items():
        if "bn" in k or "downsample.1" in k:
            assert torch.equal(v, after[k]), k
    assert not torch.equal(before["conv1.weight"], after["conv1.weight"])  # convs do train


@pytest.mark.parametrize(
    "make, frozen",
    [
        (lambda: ResNet(18, "bn", 2, False, True), ("conv1.", "bn1.", "layer1.")),
        pytest.param(
            lambda: Darknet53(2, False, True),
            ("conv1.", "conv_res_block1."),
            marks=pytest.mark.slow,
        ),
        (
            lambda: CSPDarknet(0.33, 0.25, "yolox", "focus", 3, False, False),
            ("stem.", "dark2.", "dark3."),
        ),
    ],
)
def test_frozen_stages_neither_train_nor_update_statistics(make, frozen):
    torch.manual_seed(0)
    model = make()
    names = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert names and all(n.startswith(frozen) for n in names)
    assert all(not p.requires_grad for n, p in model.named_parameters() if n.startswith(frozen))
    before = snapshot(model)
    sgd_step(model)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert not any(k.startswith(frozen) for k in changed)
    assert any(not k.startswith(frozen) and "running_mean" in k for k in changed)
    assert any(not k.startswith(frozen) and k.endswith("weight") for k in changed)


def test_norm_eval_keeps_every_running_statistic():
    torch.manual_seed(0)
    model = CSPDarknet(0.33, 0.25, "yolox", "focus", 0, True, False)
    before = snapshot(model)
    sgd_step(model)
    after = model.state_dict()
    stats = [k for k in before if "running_" in k]
    assert stats and all(torch.equal(before[k], after[k]) for k in stats)
    assert model.training and not any(
        m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d)
    )
