"""The CrowdHuman recipes (configs/crowdhuman/): each loads, builds the architecture its comment
names, trains a step on a 2-image batch at a small input size, and states its target figures
and schedule."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from crowdet.config import config_from_dict, read_yaml
from crowdet.models.build import build_detector
from crowdet.structures import Batch

CONFIGS = sorted(Path("configs/crowdhuman").glob("*.yaml"))
MINE = ["retinanet_r50_fpn.yaml", "atss_r50_fpn.yaml"]


def load(path: Path):
    data = read_yaml(path)
    data["model"]["backbone"]["weights"] = None  # nothing downloaded in tests
    data["data"]["input_size"] = 128
    return config_from_dict(data, str(path))


def two_images() -> Batch:
    boxes = torch.tensor(
        [[[10.0, 8.0, 40.0, 90.0], [50.0, 20.0, 70.0, 70.0], [0.0, 0.0, 0.0, 0.0]],
         [[60.0, 30.0, 120.0, 120.0], [5.0, 5.0, 30.0, 60.0], [80.0, 0.0, 128.0, 40.0]]]
    )  # fmt: skip
    valid = torch.tensor([[True, True, False], [True, True, True]])
    ignore = torch.tensor([[False, False, False], [False, False, True]])
    sizes = torch.tensor([[128, 128], [128, 128]])
    return Batch(
        images=torch.rand(2, 3, 128, 128) * 255, image_sizes=sizes, boxes=boxes, valid=valid,
        ignore=ignore, scales=torch.ones(2), orig_sizes=sizes, image_ids=["a", "b"],
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", MINE)
def test_recipe_trains_a_step_on_two_images(name):
    torch.manual_seed(0)
    cfg = load(Path("configs/crowdhuman") / name)
    model = build_detector(cfg).train()
    losses = model.loss(two_images())
    total = sum(losses.values())
    assert torch.isfinite(total) and total > 0
    total.backward()
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith(("backbone.conv1.", "backbone.layer1.")) for n in frozen)
    trained = [p for p in model.parameters() if p.requires_grad]
    assert all(p.grad is not None for p in trained)


@pytest.mark.parametrize("name", MINE)
def test_recipe_is_the_published_architecture(name):
    cfg = load(Path("configs/crowdhuman") / name)
    m = cfg.model
    assert (m.backbone.name, m.backbone.depth, m.neck.levels) == ("resnet50", 50, [3, 4, 5, 6, 7])
    assert (m.head.convs, m.head.channels) == (4, 256)
    anchors = len(m.anchors.octave_scales) * len(m.anchors.aspect_ratios)
    assert anchors == (9 if name.startswith("retina") else 1)
    raw = read_yaml(Path("configs/crowdhuman") / name)
    assert raw["model"]["backbone"]["weights"] == "ResNet50_Weights.IMAGENET1K_V1"
    assert (raw["data"]["min_size"], raw["data"]["max_size"]) == (800, 1400)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_recipe_states_its_target_and_schedule(path):
    head = path.read_text().split("\nname:")[0].lower()
    assert "target" in head and "ap" in head and "mr^-2" in head
    for word in ("images", "epochs", "batch", "gpus", "lr"):
        assert word in head, f"{path}: the comment names no {word}"
