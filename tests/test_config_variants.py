"""Model component sections are variants picked by `name` (crowdet.config_base.by_name): each
variant's own keys and defaults, which are also its builder's only defaults."""

import inspect

import pytest
import torch

from crowdet.config import config_from_dict, config_to_dict, load_config
from crowdet.errors import ConfigError
from crowdet.models.backbones.cspdarknet import CSPDarknet
from crowdet.models.backbones.darknet import Darknet53
from crowdet.models.backbones.resnet import ResNet
from crowdet.models.backbones.tiny import TinyBackbone, TinyBackboneConfig
from crowdet.models.build import build_detector
from crowdet.models.heads.retina import RetinaHead, RetinaHeadConfig
from crowdet.models.necks.fpn import FPN, FPNConfig
from crowdet.models.necks.pafpn import PAFPN
from crowdet.models.necks.yolov3 import YOLOv3Neck


def test_no_section_means_the_default_variant_with_its_defaults():
    m = load_config(None).model
    assert type(m.backbone) is TinyBackboneConfig and m.backbone == TinyBackboneConfig()
    assert type(m.neck) is FPNConfig and m.neck.levels == [3, 4, 5, 6]
    assert type(m.head) is RetinaHeadConfig
    assert (m.head.norm, m.head.convs, m.head.channels) == ("bn", 2, 64)
    # a checkpoint's config from before the names were written still loads
    old = config_from_dict({"model": {"head": {"convs": 1}, "backbone": {"width": 8}}})
    assert old.model.head.name == "retina" and old.model.head.convs == 1
    assert old.model.backbone.name == "tiny" and old.model.backbone.width == 8


@pytest.mark.parametrize(
    "component", [TinyBackbone, ResNet, Darknet53, CSPDarknet, FPN, YOLOv3Neck, PAFPN, RetinaHead]
)
def test_constructors_take_no_defaults_of_their_own(component):
    """The config model is the one place a component's defaults live."""
    params = inspect.signature(component.__init__).parameters.values()
    assert [p.name for p in params if p.default is not inspect.Parameter.empty] == []


def test_the_default_config_builds_the_config_models_defaults():
    head = build_detector(load_config(None)).head
    assert len(head.cls_tower.convs) == 2 and head.cls_tower.convs[0].out_channels == 64
    assert isinstance(head.cls_tower.norms[0][0], torch.nn.BatchNorm2d)
    bias = head.cls_out.bias[0].item()
    assert bias == pytest.approx(-torch.log(torch.tensor((1 - 0.01) / 0.01)).item())


def test_shipped_configs_keep_their_keys_and_values():
    model = config_to_dict(load_config("configs/demo.yaml"))["model"]
    assert model["backbone"] == {"name": "tiny", "width": 16, "depth": 1, "frozen_stages": 0}
    assert model["neck"] == {
        "name": "fpn",
        "channels": 48,
        "levels": [3, 4, 5, 6],
        "extra_from": "p5",  # the one behaviour before the key existed
    }
    head = {"name": "retina", "convs": 1, "channels": 48, "prior_prob": 0.01, "norm": "bn"}
    head |= {"visible": False, "density": False, "instances": 1}  # the crowd extras, off
    assert model["head"] == head and list(model["head"]) == list(head)  # name first, as before
    cfg = load_config("configs/tiny.yaml")
    assert config_from_dict(config_to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "model.backbone.levels=[3]",
            "unknown key 'model.backbone.levels' (valid here: name, width, depth, frozen_stages)",
        ),
        ("model.neck.name=fnp", "'model.neck.name': unknown name 'fnp'; did you mean 'fpn'?"),
        ("model.head=3", "'model.head': must be a mapping of keys with a 'name', got 3"),
        ("model.head.norm=ln", "'model.head.norm': Input should be 'bn', 'gn' or 'none'"),
        ("model.neck.levels=[4,3]", "'model.neck.levels': must be increasing with no repeats"),
    ],
)
def test_component_errors_name_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config("configs/tiny.yaml", [override])
    assert message in str(err.value)


def test_assigning_a_section_validates_it():
    cfg = load_config(None)
    cfg.model.head = {"name": "retina", "convs": 3}
    assert type(cfg.model.head) is RetinaHeadConfig and cfg.model.head.convs == 3
    with pytest.raises(ValueError, match="channel"):
        cfg.model.head = {"name": "retina", "channel": 3}


@pytest.mark.parametrize("n", [2, 80])
def test_more_than_one_class_is_refused_until_the_loss_trains_them(n):
    with pytest.raises(ConfigError, match=r"'model.num_classes': must be 1 until multi-class"):
        load_config("configs/tiny.yaml", [f"model.num_classes={n}"])
    with pytest.raises(ConfigError, match=r"'model.num_classes': Input should be greater"):
        load_config(None, ["model.num_classes=0"])
