"""A training run started with model.init_from begins at the checkpoint's weights, at step 0,
with a fresh optimizer."""

import torch
from engine_helpers import tiny_config

from crowdet.config import config_to_dict
from crowdet.engine.checkpoint import save_checkpoint
from crowdet.engine.trainer import Trainer
from crowdet.models.build import build_detector


def test_a_run_starts_from_the_init_from_checkpoint(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data)
    torch.manual_seed(123)
    source = build_detector(cfg).state_dict()
    ckpt = tmp_path / "source.pt"
    save_checkpoint({"model": source, "config": config_to_dict(cfg), "iter": 77}, ckpt)
    trainer = Trainer(tiny_config(tiny_data, f"model.init_from={ckpt}"), tmp_path / "run")
    ours = trainer.model.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in source.items())
    assert trainer.iter == 0 and not trainer.optimizer.state
