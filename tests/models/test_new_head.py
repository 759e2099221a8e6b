"""Adding a head is one file (its config model, the head, a builder) plus one row in HEADS: a toy
head written here alone (points, FCOS-style distances, its own keys) validates, builds, trains
with the Trainer and learns, and its config rejects the keys of another head."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pytest
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from crowdet.config import config_from_dict, load_config, read_yaml
from crowdet.config_base import Variant
from crowdet.engine.trainer import Trainer
from crowdet.errors import ConfigError
from crowdet.models import build
from crowdet.models.anchors import point_priors
from crowdet.models.coders import PointDistanceCoder
from crowdet.models.heads.base import DenseHead, flatten_level
from crowdet.structures import HeadOutput

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"


class ToyHeadConfig(Variant):
    name: Literal["toy"] = "toy"
    hidden: int = Field(16, ge=1)  # width of the one conv shared by every level


class ToyHead(DenseHead):
    """One shared 3x3 conv, then per point a class logit and four distances (softplus) to the
    sides of its box, in strides."""

    def __init__(self, in_channels: int, strides: list[int], num_classes: int, hidden: int):
        super().__init__(point_priors(strides), PointDistanceCoder())
        self.num_classes = num_classes
        self.conv = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.cls_out = nn.Conv2d(hidden, num_classes, 1)
        self.box_out = nn.Conv2d(hidden, 4, 1)
        nn.init.constant_(self.cls_out.bias, -4.6)  # foreground probability 0.01

    @classmethod
    def from_config(cls, cfg: ToyHeadConfig, in_channels, strides, num_classes, anchors):
        return cls(in_channels, strides, num_classes, cfg.hidden)

    def forward(self, feats: list[torch.Tensor]) -> HeadOutput:
        cls, box = [], []
        for x in feats:
            x = F.relu(self.conv(x))
            cls.append(flatten_level(self.cls_out(x), self.num_classes))
            box.append(flatten_level(F.softplus(self.box_out(x)), 4))
        return HeadOutput(torch.cat(cls, dim=1), torch.cat(box, dim=1))


@pytest.fixture
def toy_row(monkeypatch):
    monkeypatch.setitem(build.HEADS, "toy", (ToyHeadConfig, ToyHead.from_config))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from crowdet.engine.data import ensure_dataset

    root = tmp_path_factory.mktemp("toy-data")
    ensure_dataset(load_config(TINY, [f"data.root={root}"]))
    return root


def toy_config(data_root, **head):
    data = read_yaml(TINY)
    data["model"]["head"] = {"name": "toy", **head}
    data["data"]["root"] = str(data_root)
    data["assign"] = {"name": "atss"}  # stride-sized point priors: ranked, not IoU >= 0.5
    train = {"max_iters": 40, "lr": 0.005, "warmup_iters": 5, "log_interval": 1}
    data["train"].update(train, checkpoint_interval=0, threads=1, vis_images=0)
    return config_from_dict(data, "toy")


def test_toy_head_builds_from_its_row_and_its_own_keys(toy_row, data_root):
    cfg = toy_config(data_root, hidden=8)
    assert isinstance(cfg.model.head, ToyHeadConfig) and cfg.model.head.hidden == 8
    assert config_from_dict(cfg.model_dump(), "dump") == cfg  # dumps with its own keys
    model = build.build_detector(cfg)
    assert isinstance(model.head, ToyHead) and model.head.conv.out_channels == 8
    outputs, priors = model(torch.zeros(1, 3, 64, 96))
    # one point per location of P3..P5: 8x12 + 4x6 + 2x3, each a stride-sized square
    assert priors.level_sizes == [96, 24, 6] and outputs.cls_logits.shape == (1, 126, 1)
    assert priors.boxes[0].tolist() == [0.0, 0.0, 8.0, 8.0] and priors.strides[-1] == 32
    assert outputs.centerness is None and outputs.second_box is None


def test_another_heads_keys_are_errors_naming_the_valid_keys(toy_row):
    with pytest.raises(ConfigError) as err:  # tiny.yaml's head holds the retina keys
        load_config(TINY, ["model.head.name=toy"])
    assert "unknown key 'model.head.convs'" in str(err.value)
    assert "unknown key 'model.head.channels'" in str(err.value)
    assert "(valid here: name, hidden)" in str(err.value)
    with pytest.raises(
        ConfigError, match=r"unknown key 'model.head.hidden'.* \(valid here: name, "
    ):
        load_config(TINY, ["model.head.hidden=8"])  # a toy key on the retina head
    with pytest.raises(ConfigError, match=r"'model.head.hidden': Input should be greater"):
        load_config(None, ["model.head.name=toy", "model.head.hidden=0"])


def test_unknown_head_name_lists_the_table(toy_row):
    with pytest.raises(ConfigError, match=r"'model.head.name': unknown name 'tyo'; did you mean "):
        load_config(None, ["model.head.name=tyo"])
    with pytest.raises(ConfigError, match=r"\(valid: fcos, retina, toy, yolov3, yolox\)"):
        load_config(None, ["model.head.name=tyo"])


def test_toy_head_trains_with_the_trainer_and_learns(toy_row, data_root, tmp_path):
    torch.manual_seed(0)
    cfg = toy_config(data_root)
    trainer = Trainer(cfg, tmp_path, progress=False)
    trainer.train(final_eval=False)
    assert isinstance(trainer.model.head, ToyHead) and trainer.iter == 40
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if r["type"] == "train"]
    assert len(steps) == 40 and all(map(torch.isfinite, torch.tensor([r["loss"] for r in steps])))
    for term, ratio in (("loss", 0.75), ("box", 0.85)):  # the boxes learn too, not only scores
        first = sum(r[term] for r in steps[:3]) / 3
        last = sum(r[term] for r in steps[-8:]) / 8
        assert last < ratio * first, (term, first, last)
