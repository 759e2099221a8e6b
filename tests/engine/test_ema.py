"""EMA of weights: the ramped decay, the update against a per-tensor reference, and its use for
evaluation and in checkpoints."""

import pytest
import torch
from engine_helpers import state_of, tiny_config, train_cli
from torch import nn

from crowdet.engine.ema import ModelEMA, ema_decay
from crowdet.engine.trainer import Trainer


def test_decay_ramps_up_to_its_ceiling():
    assert ema_decay(0.9998, 1) == pytest.approx(2 / 11)
    assert ema_decay(0.9998, 10) == pytest.approx(11 / 20)
    assert ema_decay(0.9, 1000) == 0.9
    ramp = [ema_decay(0.9998, n) for n in range(1, 200)]
    assert all(a < b for a, b in zip(ramp, ramp[1:]))


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))


def test_update_matches_a_per_tensor_reference():
    model = small_model()
    ema = ModelEMA(model, decay=0.95)
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    for n in range(1, 6):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=g))
        model.train()(torch.randn(2, 3, 8, 8, generator=g))  # moves the BN running stats
        ema.update(model)
        d = min(0.95, (1 + n) / (10 + n))
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                reference[k] = d * reference[k] + (1 - d) * v
            else:
                reference[k] = v.clone()
    assert ema.updates == 5
    for k, v in ema.state_dict().items():
        torch.testing.assert_close(v, reference[k], rtol=1e-6, atol=1e-6)
    assert ema.state_dict()["1.num_batches_tracked"] == 5
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_ema_is_saved_and_evaluated(tmp_path, tiny_data, monkeypatch):
    assert train_cli(tiny_data, tmp_path, "train.max_iters=3", "train.ema=true") == 0
    state = state_of(tmp_path / "last.pt")
    assert state["ema_updates"] == 3 and state["ema"].keys() == state["model"].keys()
    floats = [k for k, v in state["model"].items() if v.is_floating_point()]
    assert any(not torch.equal(state["ema"][k], state["model"][k]) for k in floats)

    trainer = Trainer(tiny_config(tiny_data, "train.ema=true"), tmp_path / "v", progress=False)
    trainer.load_state(state, tmp_path / "last.pt")
    used = []
    original = trainer.ema.module.predict

    def predict(batch):
        used.append(1)
        return original(batch)

    monkeypatch.setattr(trainer.ema.module, "predict", predict)
    trainer.validate()
    assert used  # evaluation ran the averaged weights
    assert all(torch.equal(v, state["ema"][k]) for k, v in trainer.ema.state_dict().items())
