"""Starting weights: `model.backbone.weights` (a torchvision name or a state dict file) and
`model.init_from` (a crowdet checkpoint), with hand-made state dicts: renamed, missing,
mis-shaped keys, a file matching nothing, a pickled payload; and the run-folder round trip."""

from __future__ import annotations

import datetime
import logging

import pytest
import torch
import torchvision

from crowdet.api import Detector
from crowdet.config import config_to_dict, dump_config, load_config
from crowdet.engine.checkpoint import load_checkpoint, save_checkpoint
from crowdet.engine.weights import load_weights
from crowdet.errors import ConfigError, CrowdetError
from crowdet.models import pretrained
from crowdet.models.backbones.darknet import Darknet53
from crowdet.models.backbones.resnet import ResNet
from crowdet.models.build import build_detector
from crowdet.models.pretrained import init_from_checkpoint, load_backbone_weights

KEY = "model.backbone.weights"


def classifier_state(seed: int = 1) -> dict:
    """A torchvision ResNet-18 classification state dict (random, with its fc)."""
    torch.manual_seed(seed)
    return torchvision.models.resnet18(weights=None).state_dict()


def saved(tmp_path, state, name="w.pt"):
    path = tmp_path / name
    torch.save(state, path)
    return str(path)


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a, b)


@pytest.mark.parametrize("norm", ["bn", "frozen_bn"])
def test_a_torchvision_classifier_file_loads_into_resnet(tmp_path, caplog, norm):
    state = classifier_state()
    model = ResNet(18, norm, 0, False, True)
    with caplog.at_level(logging.INFO, logger="crowdet.models.pretrained"):
        report = load_backbone_weights(model, saved(tmp_path, state), KEY)
    own = model.state_dict()
    assert all(same(own[k], state[k]) for k in own)
    assert report.missing == [] and report.mis_shaped == []
    assert report.unexpected == ["fc.weight", "fc.bias"]
    assert "unused keys of the file: fc.weight, fc.bias" in caplog.text


def test_renamed_keys_load_after_their_common_prefix(tmp_path):
    state = {f"module.backbone.body.{k}": v for k, v in classifier_state().items()}
    model = ResNet(18, "bn", 0, False, True)
    report = load_backbone_weights(model, saved(tmp_path, {"state_dict": state}), KEY)
    assert len(report.loaded) == len(model.state_dict())
    assert same(
        model.state_dict()["layer4.1.conv2.weight"],
        state["module.backbone.body.layer4.1.conv2.weight"],
    )


def test_missing_and_mis_shaped_keys_are_reported_and_the_rest_loads(tmp_path, caplog):
    state = {k: v for k, v in classifier_state().items() if not k.startswith("layer4.")}
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)  # another kernel size
    model = ResNet(18, "bn", 0, False, True)
    before = model.state_dict()["conv1.weight"].clone()
    with caplog.at_level(logging.INFO, logger="crowdet.models.pretrained"):
        report = load_backbone_weights(model, saved(tmp_path, state), KEY)
    assert report.mis_shaped == [
        "conv1.weight ((64, 3, 3, 3) in the file, (64, 3, 7, 7) in the model)"
    ]
    assert same(model.state_dict()["conv1.weight"], before)  # skipped, left as initialised
    assert report.missing[0] == "conv1.weight" and all(
        k.startswith("layer4.") for k in report.missing[1:]
    )
    assert same(model.state_dict()["layer3.0.conv1.weight"], state["layer3.0.conv1.weight"])
    assert "skipped, another shape: conv1.weight" in caplog.text
    assert (
        "not in the file (left as initialised): conv1.weight, layer4.0.conv1.weight" in caplog.text
    )


def test_a_file_matching_nothing_is_an_error_naming_it(tmp_path):
    path = saved(tmp_path, {"encoder.w": torch.zeros(3), "encoder.b": torch.zeros(3)})
    with pytest.raises(CrowdetError, match=f"{path}: none of its 2 keys fits the backbone"):
        load_backbone_weights(ResNet(18, "bn", 0, False, True), path, KEY)


def test_a_pickled_payload_is_refused_and_not_run(tmp_path):
    path = saved(tmp_path, {"conv1.weight": torch.zeros(1), "when": datetime.date(2020, 1, 1)})
    with pytest.raises(CrowdetError, match="refused to load.*datetime"):
        load_backbone_weights(ResNet(18, "bn", 0, False, True), path, KEY)


def test_a_missing_file_names_the_key():
    with pytest.raises(ConfigError, match=f"{KEY}: no such file: nowhere.pt"):
        load_backbone_weights(ResNet(18, "bn", 0, False, True), "nowhere.pt", KEY)


def test_a_torchvision_name_is_resolved_by_torchvision_and_nothing_else_downloads(monkeypatch):
    fetched = []

    def fake_state(self, progress, check_hash):  # stands in for the download
        fetched.append(self)
        return classifier_state(2)

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", fake_state)
    model = ResNet(18, "bn", 0, False, True)
    load_backbone_weights(model, "ResNet18_Weights.IMAGENET1K_V1", KEY)
    assert fetched == [torchvision.models.ResNet18_Weights.IMAGENET1K_V1]
    assert same(
        model.state_dict()["layer1.0.bn1.running_var"],
        classifier_state(2)["layer1.0.bn1.running_var"],
    )
    with pytest.raises(ConfigError, match=f"{KEY}: 'ResNet18_Weights.NOPE' is neither a file"):
        load_backbone_weights(model, "ResNet18_Weights.NOPE", KEY)
    assert len(fetched) == 1


@pytest.mark.slow
def test_mmdetection_style_darknet_keys_load(tmp_path):
    torch.manual_seed(3)
    source = Darknet53(0, False, True).state_dict()
    state = {f"backbone.{k}": v for k, v in source.items()}
    state["neck.detect1.conv1.conv.weight"] = torch.zeros(1)
    model = Darknet53(0, False, True)
    report = load_backbone_weights(model, saved(tmp_path, {"state_dict": state}), KEY)
    assert report.unexpected == ["neck.detect1.conv1.conv.weight"] and report.missing == []
    assert all(same(v, source[k]) for k, v in model.state_dict().items())


SMALL = [
    "model.backbone={name: resnet, depth: 18}",
    "model.neck={name: fpn, channels: 16, levels: [3, 4, 5]}",
    "model.head={name: retina, convs: 1, channels: 16}",
]


def checkpoint(tmp_path, overrides, ema: bool = False):
    cfg = load_config(None, overrides)
    torch.manual_seed(5)
    model = build_detector(cfg)
    state = {"model": model.state_dict(), "config": config_to_dict(cfg)}
    if ema:
        state["ema"] = {k: v + 1 if v.is_floating_point() else v for k, v in state["model"].items()}
    return save_checkpoint(state, tmp_path / "last.pt"), model


def test_init_from_skips_a_head_for_another_number_of_anchors(tmp_path, caplog):
    path, source = checkpoint(tmp_path, [*SMALL, "model.anchors.aspect_ratios=[2.44]"])
    cfg = load_config(None, [*SMALL, "model.anchors.aspect_ratios=[1.0, 2.44]"])
    torch.manual_seed(6)
    model = build_detector(cfg)
    with caplog.at_level(logging.INFO, logger="crowdet.models.pretrained"):
        report = init_from_checkpoint(model, path, "model.init_from")
    skipped = {k.split(" ")[0] for k in report.mis_shaped}
    assert skipped == {
        "head.cls_out.weight",
        "head.cls_out.bias",
        "head.box_out.weight",
        "head.box_out.bias",
    }
    ours, theirs = model.state_dict(), source.state_dict()
    assert all(same(ours[k], theirs[k]) for k in ours if k not in skipped)
    assert "skipped, another shape: head." in caplog.text


def test_init_from_prefers_the_ema_weights_and_no_optimizer_is_read(tmp_path):
    path, source = checkpoint(tmp_path, SMALL, ema=True)
    cfg = load_config(None, [*SMALL, f"model.init_from={path}"])
    model = build_detector(cfg)
    pretrained.load_initial_weights(model, cfg)
    want = source.state_dict()["neck.lateral.0.weight"] + 1
    assert same(model.state_dict()["neck.lateral.0.weight"], want)


def test_init_from_a_file_that_is_no_checkpoint_names_it(tmp_path):
    path = saved(tmp_path, {"x": torch.zeros(1)})
    with pytest.raises(CrowdetError, match="not a crowdet checkpoint"):
        init_from_checkpoint(build_detector(load_config(None, SMALL)), path, "model.init_from")


@pytest.mark.parametrize(
    "overrides",
    [
        SMALL,
        [
            "model.backbone={name: cspdarknet, variant: null, depth_mult: 0.33, width_mult: 0.125}",
            "model.neck={name: fpn, channels: 16, levels: [3, 4, 5, 6], extra_from: c5}",
            "model.head={name: retina, convs: 1, channels: 16}",
        ],
    ],
)
def test_a_model_rebuilt_from_its_checkpoint_gives_the_same_outputs(tmp_path, overrides):
    """From the checkpoint's own config, and from the run folder's config.yaml + last.pt."""
    path, model = checkpoint(tmp_path, overrides)
    dump_config(load_config(None, overrides), tmp_path / "config.yaml")
    from_folder = build_detector(load_config(tmp_path / "config.yaml"))
    load_weights(from_folder, load_checkpoint(path), path, load_config(tmp_path / "config.yaml"))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a, _ = model.eval()(x)
        for rebuilt in (Detector.from_checkpoint(path, tta=False).model, from_folder.eval()):
            b, _ = rebuilt(x)
            assert torch.equal(a.cls_logits, b.cls_logits)
            assert torch.equal(a.box_regression, b.box_regression)
            assert type(rebuilt.backbone) is type(model.backbone)


def test_resnet_turns_bgr_input_to_rgb():
    model = build_detector(load_config(None, SMALL))
    assert model.input_norm.rgb
    assert not build_detector(load_config(None)).input_norm.rgb
