"""Non-finite losses and gradients: the step is skipped and counted; after train.max_bad_steps in a
row the run stops with the loss terms and image IDs written out and last.pt left untouched."""

import json

import pytest
import torch
from engine_helpers import inject_nan, state_of, tiny_config, train_cli

from crowdet.engine.data import epoch_batches
from crowdet.engine.trainer import Trainer
from crowdet.errors import CrowdetError
from crowdet.models.detector import DenseDetector


def adam_steps(state: dict) -> set[int]:
    return {int(s["step"]) for s in state["optimizer"]["state"].values()}


def test_one_nan_step_is_skipped_and_counted(tmp_path, tiny_data, monkeypatch):
    calls = inject_nan({2}, monkeypatch.setattr)  # the third step's loss is NaN
    assert train_cli(tiny_data, tmp_path, "train.max_iters=6") == 0
    assert len(calls) == 6
    state = state_of(tmp_path / "last.pt")
    assert state["iter"] == 6 and state["skipped"] == {"non-finite loss": 1}
    assert adam_steps(state) == {5}  # the optimizer moved on the 5 good steps only
    assert state["scheduler"]["last_epoch"] == 6  # the schedule follows the step count
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_a_skipped_step_leaves_the_weights_alone(tiny_data, tmp_path, monkeypatch):
    inject_nan({0}, monkeypatch.setattr)
    trainer = Trainer(tiny_config(tiny_data, "train.max_iters=1"), tmp_path, progress=False)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train(final_eval=False)
    after = trainer.model.state_dict()
    params = dict(trainer.model.named_parameters())
    assert all(torch.equal(before[k], after[k]) for k in params)


def test_consecutive_nan_steps_stop_the_run_with_a_report(tmp_path, tiny_data, monkeypatch):
    inject_nan(set(range(4, 100)), monkeypatch.setattr)  # every step after the 4th
    cfg = tiny_config(
        tiny_data, "train.max_iters=20", "train.checkpoint_interval=4", "train.max_bad_steps=3"
    )
    trainer = Trainer(cfg, tmp_path, progress=False)
    with pytest.raises(CrowdetError, match="3 bad steps in a row"):
        trainer.train()
    report = json.loads((tmp_path / "bad_step.json").read_text())
    assert report["iter"] == 6 and report["kind"] == "non-finite loss"
    (rank0,) = report["ranks"]
    assert rank0["losses"]["cls"] != rank0["losses"]["cls"]  # NaN
    # step 6 is the 7th batch: epoch 1, batch 2 of the seeded order (4 batches per epoch)
    batch = epoch_batches(len(trainer.train_set), 4, epoch=1, seed=cfg.train.seed)[2]
    assert rank0["image_ids"] == [trainer.train_records[i].image_id for i in batch]
    assert state_of(tmp_path / "last.pt")["iter"] == 4  # the last good checkpoint, untouched


def test_non_finite_gradient_is_skipped(tmp_path, tiny_data, monkeypatch):
    original = DenseDetector.loss
    calls = []

    def loss(self, batch):
        out = original(self, batch)
        calls.append(1)
        if len(calls) == 2:  # finite value, NaN gradient: d sqrt(x)/dx at 0 is inf, times 0
            zero = sum(p.sum() for p in self.parameters()) * 0.0
            out = {**out, "cls": out["cls"] + torch.sqrt(zero * zero)}
        return out

    monkeypatch.setattr(DenseDetector, "loss", loss)
    trainer = Trainer(tiny_config(tiny_data, "train.max_iters=3"), tmp_path, progress=False)
    trainer.train(final_eval=False)
    assert trainer.skipped == {"non-finite gradient": 1}
    assert adam_steps(trainer.state_dict()) == {2}


def test_a_skipped_step_leaves_buffers_and_ema_alone(tiny_data, tmp_path, monkeypatch):
    inject_nan({0}, monkeypatch.setattr)  # the forward ran (BN statistics moved), the loss NaN
    cfg = tiny_config(tiny_data, "train.max_iters=1", "train.ema=true")
    trainer = Trainer(cfg, tmp_path, progress=False)
    model = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    ema = {k: v.clone() for k, v in trainer.ema.state_dict().items()}
    assert any("running_mean" in k for k in model)
    trainer.train(final_eval=False)
    assert trainer.skipped == {"non-finite loss": 1}
    after = trainer.model.state_dict()
    assert [k for k in model if not torch.equal(model[k], after[k])] == []
    assert all(torch.equal(ema[k], v) for k, v in trainer.ema.state_dict().items())


def test_no_checkpoint_is_written_during_a_bad_streak(tmp_path, tiny_data, monkeypatch):
    inject_nan(set(range(2, 100)), monkeypatch.setattr)  # steps 3, 4, 5 are bad
    cfg = tiny_config(
        tiny_data, "train.max_iters=20", "train.checkpoint_interval=1", "train.max_bad_steps=3"
    )
    with pytest.raises(CrowdetError, match="3 bad steps in a row"):
        Trainer(cfg, tmp_path, progress=False).train()
    last = state_of(tmp_path / "last.pt")
    assert last["iter"] == 2 and last["bad_steps"] == 0  # the last good one
    assert state_of(tmp_path / "last.pt.prev")["iter"] == 1


def test_a_non_finite_state_is_never_saved(tmp_path, tiny_data):
    trainer = Trainer(tiny_config(tiny_data, "train.max_iters=1"), tmp_path, progress=False)
    trainer.train(final_eval=False)
    before = (tmp_path / "last.pt").read_bytes()
    name, buffer = next((n, b) for n, b in trainer.model.named_buffers() if "running_var" in n)
    buffer[0] = float("inf")
    with pytest.raises(CrowdetError, match=f"not writing .*last.pt: model.{name} holds NaN"):
        trainer.save()
    assert (tmp_path / "last.pt").read_bytes() == before
    assert not (tmp_path / "last.pt.tmp").exists()
