"""crowdet's RetinaNet-R50-FPN and FCOS-R50-FPN backbone + FPN are torchvision's architectures:
with torchvision's (random) weights copied in by a key map, the same raw outputs on the same
input and the same parameter count; the retina anchors can be configured to be torchvision's."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.detection import fcos_resnet50_fpn, retinanet_resnet50_fpn
from torchvision.models.detection.anchor_utils import AnchorGenerator as TVAnchors

from crowdet.config import load_config
from crowdet.models.build import build_detector
from crowdet.models.torchvision_map import crowdet_key

pytestmark = pytest.mark.slow

RETINA = [
    "model.backbone={name: resnet, depth: 50, norm: bn}",
    "model.neck={name: fpn, channels: 256, levels: [3, 4, 5, 6, 7], extra_from: p5}",
    "model.head={name: retina, convs: 4, channels: 256, norm: none}",
    # torchvision's anchors: sizes 32 * 2**(k-3) at Pk (4 x stride), 3 octaves, ratios 0.5-2
    "model.anchors={base_scale: 4.0, octave_scales: [1.0, 1.2599, 1.5874], "
    "aspect_ratios: [0.5, 1.0, 2.0], order: ratio_major, keep: area, center_offset: 0.0}",
]


def randomise_norms(model: torch.nn.Module) -> None:
    """Running statistics and affine terms away from 0 / 1, so copying them is tested."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def copy_into(crowdet_model, tv_model, skip=()) -> None:
    ours = crowdet_model.state_dict()
    mapped = {}
    for k, v in tv_model.state_dict().items():
        if k.startswith(skip):
            continue
        name = crowdet_key(k)
        assert name in ours, f"{k} -> {name} is not a crowdet key"
        assert ours[name].shape == v.shape, name
        mapped[name] = v
    missing = [k for k in ours if k not in mapped and k.startswith(("backbone.", "neck."))]
    assert missing == []
    crowdet_model.load_state_dict(mapped, strict=not skip)


def test_retinanet_r50_fpn_matches_torchvision():
    torch.manual_seed(0)
    tv = retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=1).eval()
    randomise_norms(tv)
    ours = build_detector(load_config(None, RETINA)).eval()
    n_tv = sum(p.numel() for p in tv.parameters())
    n_ours = sum(p.numel() for p in ours.parameters())
    assert n_ours == n_tv == 32_201_069  # torchvision's RetinaNet R50-FPN, one class
    copy_into(ours, tv)
    # already normalised: both take the same tensor; a multiple of 128 (P7's stride), as
    # torchvision takes a level's stride to be the image size // the feature size
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        feats = list(tv.backbone(x).values())
        want = tv.head(feats)
        got, priors = ours(x)
    torch.testing.assert_close(got.cls_logits, want["cls_logits"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got.box_regression, want["bbox_regression"], rtol=1e-4, atol=1e-4)
    # the same anchors in the same order (torchvision rounds its sizes to whole pixels)
    shapes = [tuple(f.shape[-2:]) for f in feats]
    tv_anchors = tv.anchor_generator
    assert isinstance(tv_anchors, TVAnchors)
    from torchvision.models.detection.image_list import ImageList

    (tv_boxes,) = tv_anchors(ImageList(x, [(128, 128)]), feats)
    assert tv_boxes.shape == priors.boxes.shape == (sum(h * w for h, w in shapes) * 9, 4)
    torch.testing.assert_close(priors.boxes, tv_boxes, rtol=0, atol=1.5)


def test_fcos_r50_fpn_backbone_and_fpn_match_torchvision():
    """The backbone + FPN part (P3-P7, P6 from P5) of torchvision's FCOS. The FCOS head's own
    comparison is the next test."""
    torch.manual_seed(0)
    tv = fcos_resnet50_fpn(weights=None, weights_backbone=None, num_classes=1).eval()
    randomise_norms(tv)
    ours = build_detector(load_config(None, RETINA)).eval()
    copy_into(ours, tv, skip=("head.",))
    tv_count = sum(p.numel() for k, p in tv.named_parameters() if k.startswith("backbone."))
    our_count = sum(p.numel() for m in (ours.backbone, ours.neck) for p in m.parameters())
    assert our_count == tv_count
    x = torch.randn(1, 3, 128, 96)
    with torch.no_grad():
        want = list(tv.backbone(x).values())
        got = ours.neck(ours.backbone(x))
    assert len(got) == len(want) == 5
    # features reach ~2,500 here: within 1e-4 of each level's largest magnitude (crowdet runs
    # each conv with its BatchNorm folded in, float32 sums in another order)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4 * w.abs().max().item())


def test_fpn_p6_from_c5_matches_torchvision_last_level_on_c5():
    """extra_from c5: torchvision's LastLevelP6P7 with C5's channels (its RetinaNet v2 layout
    uses P5; a 2048 -> 256 P6 conv reads C5)."""
    from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelP6P7

    from crowdet.models.necks.fpn import FPN

    torch.manual_seed(0)
    tv = FeaturePyramidNetwork([8, 16, 32], 12, extra_blocks=LastLevelP6P7(32, 12)).eval()
    ours = FPN([8, 16, 32], [8, 16, 32], 12, [3, 4, 5, 6, 7], "c5")
    state = {}
    for k, v in tv.state_dict().items():
        k = k.replace("inner_blocks", "lateral").replace("layer_blocks", "output")
        k = k.replace("extra_blocks.p6", "extra.0").replace("extra_blocks.p7", "extra.1")
        parts = k.split(".")
        state[".".join(parts[:2] + parts[3:]) if parts[0] in ("lateral", "output") else k] = v
    ours.load_state_dict(state)
    feats = [torch.randn(2, 8, 16, 16), torch.randn(2, 16, 8, 8), torch.randn(2, 32, 4, 4)]
    want = list(tv({str(i): f for i, f in enumerate(feats)}).values())
    for g, w in zip(ours(feats), want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


def test_fcos_r50_fpn_matches_torchvision():
    """The whole FCOS-R50-FPN (backbone, FPN, head with GroupNorm towers and centerness): the
    same parameter count and raw outputs as torchvision's fcos_resnet50_fpn(num_classes=1)."""
    torch.manual_seed(0)
    tv = fcos_resnet50_fpn(weights=None, weights_backbone=None, num_classes=1).eval()
    randomise_norms(tv)
    fcos = RETINA[:2] + ["model.head={name: fcos, convs: 4, norm: gn, quality: centerness}"]
    ours = build_detector(load_config(None, fcos)).eval()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in tv.parameters())
    copy_into(ours, tv, skip=("head.",))
    pairs = {
        "cls_tower": tv.head.classification_head.conv,
        "cls_out": tv.head.classification_head.cls_logits,
        "box_tower": tv.head.regression_head.conv,
        "box_out": tv.head.regression_head.bbox_reg,
        "quality_out": tv.head.regression_head.bbox_ctrness,
    }
    for name, module in pairs.items():
        getattr(ours.head, name).load_state_dict(module.state_dict())  # strict: same layout
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        want = tv.head(list(tv.backbone(x).values()))
        got, _ = ours(x)
    torch.testing.assert_close(got.cls_logits, want["cls_logits"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got.box_regression, want["bbox_regression"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got.centerness, want["bbox_ctrness"], rtol=1e-4, atol=1e-4)
