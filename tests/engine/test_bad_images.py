"""Unreadable and missing images while training and evaluating: a batch with no readable image is
a counted skipped step (not a crash in the head), a set with no readable image is an error at
start-up, each bad image is named once and counted once, and an unreadable validation image keeps
its people in the metrics (as missed)."""

import json
import logging
import shutil

import numpy as np
import pytest
from engine_helpers import TINY, state_of, tiny_config, tiny_overrides, train_cli

from crowdet.cli import main as cli_main
from crowdet.data.records import ImageRecord
from crowdet.engine.model_eval import score_detections
from crowdet.engine.trainer import Trainer
from crowdet.errors import CrowdetError


def copy_data(tiny_data, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_data, root, ignore=shutil.ignore_patterns("*.sizes.json"))
    return root


def ids(root, split):
    lines = (root / f"annotation_{split}.odgt").read_text().splitlines()
    return [json.loads(x)["ID"] for x in lines]


def truncate(root, image_id):
    path = root / "Images" / f"{image_id}.jpg"
    path.write_bytes(path.read_bytes()[:300])
    return path


def test_batch_of_one_unreadable_image_is_a_counted_skipped_step(tiny_data, tmp_path, caplog):
    root = copy_data(tiny_data, tmp_path)
    bad = ids(root, "train")[2]
    path = truncate(root, bad)
    run = tmp_path / "run"
    # 4 images, one a truncated JPEG, batches of one: 8 steps draw it twice (two epochs)
    extra = ["data.max_images=4", "train.batch_size=1", "train.max_iters=8"]
    with caplog.at_level(logging.INFO):
        assert train_cli(root, run, *extra) == 0
    state = state_of(run / "last.pt")
    assert state["iter"] == 8
    assert state["skipped"] == {"empty batch": 2}
    assert list(state["data_faults"]["images"]) == ["bad image"]
    assert list(state["data_faults"]["images"]["bad image"]) == [bad]
    assert state["data_faults"]["draws"] == {"bad image": 2}
    named = [r.message for r in caplog.records if "skipping image" in r.message]
    assert len(named) == 1 and bad in named[0] and str(path) in named[0]  # once, with the path
    summary = [r.message for r in caplog.records if r.message.startswith("training images:")]
    assert summary == [
        "training images: found 4, corrupt 0, missing 0, empty 0, invalid boxes 0, bad image 1 "
        "(2 draws of them skipped)"
    ]


def test_resume_past_an_unreadable_batch_keeps_counting_images_once(tiny_data, tmp_path):
    root = copy_data(tiny_data, tmp_path)
    bad = ids(root, "train")[0]
    truncate(root, bad)
    run = tmp_path / "run"
    extra = ["data.max_images=4", "train.batch_size=1", "train.checkpoint_interval=1"]
    assert train_cli(root, run, *extra, "train.max_iters=4") == 0
    assert train_cli(root, run, *extra, "train.max_iters=8", resume=True) == 0
    state = state_of(run / "last.pt")
    assert state["iter"] == 8 and state["skipped"] == {"empty batch": 2}
    assert state["data_faults"]["draws"] == {"bad image": 2}
    assert list(state["data_faults"]["images"]["bad image"]) == [bad]


def test_missing_images_are_named_at_start_up_and_counted(tiny_data, tmp_path, caplog):
    root = copy_data(tiny_data, tmp_path)
    gone = ids(root, "train")[5]
    (root / "Images" / f"{gone}.jpg").unlink()
    with caplog.at_level(logging.INFO):
        trainer = Trainer(tiny_config(root, "train.max_iters=1"), tmp_path / "run", progress=False)
        trainer.train(final_eval=False)
    warned = [r.message for r in caplog.records if "missing on disk" in r.message]
    assert len(warned) == 1 and "1 of 16 images" in warned[0] and gone in warned[0]
    assert "missing 1," in trainer.faults.summary()  # counted though never drawn


def test_no_readable_image_is_an_error_at_start_up(tiny_data, tmp_path):
    root = copy_data(tiny_data, tmp_path)
    train_ids = ids(root, "train")
    for image_id in train_ids[:6]:
        truncate(root, image_id)
    for image_id in train_ids[6:]:
        (root / "Images" / f"{image_id}.jpg").unlink()
    ann, images = root / "annotation_train.odgt", root / "Images"
    with pytest.raises(CrowdetError, match="16 of 16 images of .* are missing or unreadable") as e:
        Trainer(tiny_config(root), tmp_path / "run", progress=False)
    assert f"images of {ann} are" in str(e.value) and f"under {images} " in str(e.value)
    assert not (tmp_path / "run").exists()


def record(image_id, boxes):
    xyxy = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(xyxy)
    return ImageRecord(
        image_id, f"/nowhere/{image_id}.jpg", fbox=xyxy, vbox=xyxy, hbox=xyxy[:, :] * 0.5,
        ignore=np.zeros(n, bool), head_ignore=np.zeros(n, bool), box_ids=np.arange(n),
        occ=np.zeros(n, np.float32),
    )  # fmt: skip


def test_an_unreadable_image_keeps_its_people_as_missed():
    a = record("a", [[10, 10, 50, 90], [60, 10, 100, 90]])
    b = record("b", [[10, 10, 50, 90]])
    dets = {
        "a": (np.array([[10, 10, 50, 90], [60, 10, 100, 90]], np.float32), np.array([0.9, 0.8]))
    }
    unread = {"b": "/nowhere/b.jpg: truncated JPEG"}
    result = score_detections([a, b], dets, {"a": (120, 100)}, coco=False, unread=unread)
    assert result.num_images == 2 and result.num_gt == 3
    assert result.recall.max() == pytest.approx(2 / 3)  # b's person is missed
    assert result.to_json()["skipped_images"] == ["b"]
    alone = score_detections([a], dets, {"a": (120, 100)}, coco=False)
    assert result.AP < alone.AP and "skipped_images" not in alone.to_json()


@pytest.fixture(scope="module")
def one_step(tiny_data, tmp_path_factory):
    run = tmp_path_factory.mktemp("one-step")
    assert train_cli(tiny_data, run, "train.max_iters=1") == 0
    return run / "last.pt"


def test_eval_counts_an_unreadable_val_image(tiny_data, tmp_path, one_step, caplog, capsys):
    root = copy_data(tiny_data, tmp_path)
    bad = ids(root, "val")[3]
    truncate(root, bad)
    out = tmp_path / "eval"
    argv = ["eval", str(TINY), *tiny_overrides(root), "--checkpoint", str(one_step)]
    assert cli_main([*argv, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["skipped_images"] == [bad] and metrics["num_images"] == 8
    assert any("could not be read" in r.message and bad in r.message for r in caplog.records)
    capsys.readouterr()
    assert cli_main([*argv, "data.strict=true", "--out", str(tmp_path / "strict")]) == 2
    assert f"{bad}.jpg: truncated JPEG" in capsys.readouterr().err


def test_validation_during_training_counts_an_unreadable_val_image(tiny_data, tmp_path):
    root = copy_data(tiny_data, tmp_path)
    bad = ids(root, "val")[0]
    truncate(root, bad)
    assert train_cli(root, tmp_path / "run", "train.max_iters=1") == 0
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    (evaluation,) = [json.loads(x) for x in lines if json.loads(x)["type"] == "eval"]
    assert evaluation["skipped_images"] == [bad] and evaluation["num_images"] == 8
