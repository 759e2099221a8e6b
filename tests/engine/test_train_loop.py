"""The loop's outputs and options: the log line, metrics.jsonl / results.csv / TensorBoard (with
prediction pictures), early stopping, gradient accumulation and torch.compile."""

import copy
import csv
import json
import logging
import re

import pytest
import torch
from engine_helpers import state_of, tiny_config, train_cli

from crowdet.engine import validation as validation_module
from crowdet.engine.amp import cpu_bf16_supported
from crowdet.engine.dist import DistInfo
from crowdet.engine.trainer import Trainer
from crowdet.errors import CrowdetError

LOG_LINE = re.compile(
    r"iter 2/4 loss \d+\.\d{3} \(cls \d+\.\d{3} box \d+\.\d{3}\) lr \d\.\d\de-\d\d "
    r"data \d+\.\d{3}s iter \d+\.\d{3}s \d+\.\d img/s mem \d+M eta \d+:\d\d"
)


def test_run_outputs(tmp_path, tiny_data, caplog):
    extra = ["train.max_iters=4", "train.eval_interval=2", "train.vis_images=2"]
    with caplog.at_level(logging.INFO):
        assert train_cli(tiny_data, tmp_path, *extra) == 0
    assert any(LOG_LINE.search(r.getMessage()) for r in caplog.records), caplog.text
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in records if r["type"] == "train"] == [1, 2, 4]
    assert [r["iter"] for r in records if r["type"] == "eval"] == [2, 4]
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["iter"]) for r in rows] == [2, 4]
    assert all(0 <= float(r["MR"]) <= 1 for r in rows)
    assert {"config.yaml", "last.pt", "best.pt"} <= {p.name for p in tmp_path.iterdir()}

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path), size_guidance={"images": 0}).Reload()
    assert {"val/predictions/0", "val/predictions/1"} <= set(events.Tags()["images"])
    assert {"train/loss", "train/lr", "val/MR"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("val/MR")] == [2, 4]


class FakeResult:
    def __init__(self, mr):
        self.mr = mr

    def to_json(self):
        return {"AP": 1 - self.mr, "MR": self.mr, "JI": 0.5, "coco": {}}


@pytest.mark.parametrize(
    "mrs, stop, best", [([0.5, 0.6, 0.55, 0.4], 3, 1), ([0.5, 0.6, 0.4, 0.7, 0.8, 0.3], 5, 3)]
)
def test_early_stop_after_patience_evaluations_without_improvement(
    tmp_path, tiny_data, monkeypatch, mrs, stop, best
):
    sequence = iter(mrs)
    monkeypatch.setattr(
        validation_module, "score_detections", lambda *a, **k: FakeResult(next(sequence))
    )
    cfg = tiny_config(tiny_data, "train.max_iters=20", "train.eval_interval=1", "train.patience=2")
    trainer = Trainer(cfg, tmp_path, progress=False)
    metrics = trainer.train()
    assert trainer.iter == stop
    assert metrics["MR"] == mrs[stop - 1]  # no extra evaluation after stopping
    assert state_of(tmp_path / "best.pt")["iter"] == best
    assert state_of(tmp_path / "last.pt")["iter"] == stop


def test_accumulated_gradient_is_the_mean_of_the_batches(tmp_path, tiny_data):
    cfg = tiny_config(tiny_data, "train.accumulate=2", "train.clip_grad=0", "train.max_iters=1")
    trainer = Trainer(cfg, tmp_path, progress=False)
    reference = copy.deepcopy(trainer.model)
    stream = trainer._micro_batches()
    batches = [next(stream)[0] for _ in range(2)]
    stream.close()
    trainer.epoch, trainer.batch_in_epoch = 0, 0
    trainer.train(final_eval=False)
    expected = {}
    for batch in batches:
        grads = torch.autograd.grad(
            sum(reference.loss(batch).values()), list(reference.parameters())
        )
        for (name, _), g in zip(reference.named_parameters(), grads):
            expected[name] = expected.get(name, 0) + g / 2
    for name, p in trainer.model.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], rtol=1e-5, atol=1e-7)
    assert (trainer.epoch, trainer.batch_in_epoch) == (0, 2)


def test_compile_option_compiles_the_detector(tmp_path, tiny_data, monkeypatch):
    compiled = []
    original = torch.nn.Module.compile

    def compile_eager(self, *args, **kwargs):  # dynamo without a C++ toolchain: the same numbers
        compiled.append(type(self).__name__)
        original(self, backend="eager")

    monkeypatch.setattr(torch.nn.Module, "compile", compile_eager)
    extra = ["train.max_iters=2", "train.checkpoint_interval=0"]
    assert train_cli(tiny_data, tmp_path / "plain", *extra) == 0
    assert train_cli(tiny_data, tmp_path / "compiled", *extra, "train.compile=true") == 0
    assert compiled == ["DenseDetector"]
    a, b = state_of(tmp_path / "plain/last.pt"), state_of(tmp_path / "compiled/last.pt")
    assert a["model"].keys() == b["model"].keys()  # checkpoints stay plain detector weights
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-5, atol=1e-6)


def test_time_limit_stops_saves_and_still_evaluates(tmp_path, tiny_data):
    cfg = tiny_config(tiny_data, "train.max_iters=50", "train.time_limit=1e-9")
    trainer = Trainer(cfg, tmp_path, progress=False)
    metrics = trainer.train()
    assert trainer.iter == 0 and metrics is not None and 0 <= metrics["MR"] <= 1
    assert state_of(tmp_path / "last.pt")["iter"] == 0


def test_sync_bn_without_cuda_is_a_clear_error(tmp_path, tiny_data):
    cfg = tiny_config(tiny_data, "train.sync_bn=true")
    with pytest.raises(CrowdetError, match="sync_bn.*CUDA"):
        Trainer(cfg, tmp_path, progress=False, dist=DistInfo(rank=0, world=2, local_rank=0))


def test_amp_bf16_trains_where_the_cpu_runs_it(tmp_path, tiny_data):
    cfg = tiny_config(tiny_data, "train.amp=bf16", "train.max_iters=2")
    trainer = Trainer(cfg, tmp_path, progress=False)
    assert trainer.amp == ("bf16" if cpu_bf16_supported() else "off")
    before = {k: v.clone() for k, v in trainer.model.named_parameters()}
    trainer.train(final_eval=False)
    assert trainer.iter == 2 and not trainer.skipped
    after = dict(trainer.model.named_parameters())
    assert all(after[k].dtype == torch.float32 for k in after)  # fp32 master weights
    assert any(not torch.equal(before[k], after[k]) for k in after)
