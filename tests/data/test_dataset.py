"""The data pipeline: `SampleSource.load` decodes, transforms move every box kind alike, the box
kind is chosen last, and `collate` pads uint8 BGR pixels."""

import cv2
import numpy as np
import torch

from crowdet.data.collate import collate
from crowdet.data.dataset import CrowdDataset, SampleSource
from crowdet.data.pipeline import HFlip, Letterbox, eval_transforms, train_transforms
from crowdet.data.records import ImageRecord
from crowdet.data.sample import choose_targets


def write_image(path, h=40, w=80, seed=0):
    img = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    cv2.imwrite(str(path), img)
    return img


def record(path, fbox, ignore, image_id="a", hbox=None, head_ignore=None):
    fbox = np.asarray(fbox, np.float32).reshape(-1, 4)
    n = len(fbox)
    hbox = np.full((n, 4), np.nan, np.float32) if hbox is None else hbox
    return ImageRecord(
        image_id=image_id,
        image_path=str(path),
        fbox=fbox,
        vbox=fbox.copy(),
        hbox=np.asarray(hbox, np.float32).reshape(-1, 4),
        ignore=np.asarray(ignore, bool),
        head_ignore=np.zeros(n, bool) if head_ignore is None else np.asarray(head_ignore, bool),
        box_ids=np.arange(n),
        occ=np.zeros(n, np.float32),
    )


def eval_set(recs, input_size, box_kind="full"):
    return CrowdDataset(SampleSource(recs), eval_transforms(input_size), box_kind)


def train_set(recs, input_size, hflip=0.0, min_box_size=2.0, box_kind="full", **augment):
    transforms = train_transforms(input_size, hflip, **augment)
    return CrowdDataset(SampleSource(recs), transforms, box_kind, min_box_size)


def test_letterbox_scales_boxes_and_keeps_amodal_boxes_for_eval(tmp_path):
    write_image(tmp_path / "a.png", 40, 80)
    rec = record(tmp_path / "a.png", [[10, 5, 30, 35], [-10, 0, 20, 50]], [False, False])
    s = eval_set([rec], 160)[0]
    assert s.image.shape == (80, 160, 3) and s.scale == 2.0 and s.orig_size == (40, 80)
    np.testing.assert_allclose(s.targets()[0], [[20, 10, 60, 70], [-20, 0, 40, 100]])


def test_training_flip_clips_and_drops_tiny(tmp_path):
    write_image(tmp_path / "a.png", 40, 80)
    boxes = [[10, 5, 30, 35], [-10, 0, 20, 50], [79.5, 0, 90, 10]]
    rec = record(tmp_path / "a.png", boxes, [False, True, False])
    s = train_set([rec], 80, hflip=1.0, min_box_size=2.0)[0]
    # flipped x: x' = 80 - x; then clipped to [0, 80] x [0, 40]; the third box is 0.5 px wide
    boxes, ignore = s.targets()
    np.testing.assert_allclose(boxes, [[50, 5, 70, 35], [60, 0, 80, 40]])
    assert ignore.tolist() == [False, True]


def test_every_transform_moves_every_box_kind_alike(tmp_path):
    write_image(tmp_path / "a.png", 40, 80)
    full = [[10, 5, 30, 35], [40, 0, 60, 20]]
    heads = [[14, 5, 20, 11], [np.nan] * 4]  # the second person has no head box
    rec = record(tmp_path / "a.png", full, [False, False], hbox=heads)
    rec.vbox = np.array([[12, 6, 28, 30], [41, 1, 59, 19]], np.float32)
    sample = SampleSource([rec]).load(0)
    rng = np.random.default_rng(0)
    s = HFlip(1.0)(Letterbox(160)(sample, None), rng)  # x2, then x' = 160 - x
    np.testing.assert_allclose(s.boxes["full"], [[100, 10, 140, 70], [40, 0, 80, 40]])
    np.testing.assert_allclose(s.boxes["visible"], [[104, 12, 136, 60], [42, 2, 78, 38]])
    np.testing.assert_allclose(s.boxes["head"][0], [120, 10, 132, 22])
    assert np.isnan(s.boxes["head"][1]).all()
    assert np.array_equal(s.image, cv2.flip(cv2.resize(sample.image, (160, 80)), 1))


def test_the_box_kind_is_chosen_last_with_the_rows_kept_aligned(tmp_path):
    write_image(tmp_path / "a.png", 40, 80)
    full = [[10, 5, 30, 35], [40, 0, 60, 20], [0, 0, 70, 40]]
    heads = [[14, 5, 20, 11], [np.nan] * 4, [50, 30, 51, 31]]
    rec = record(tmp_path / "a.png", full, [False, False, False], hbox=heads)
    rec.head_ignore = np.array([True, False, False])
    s = choose_targets(SampleSource([rec]).load(0), "head", min_box_size=2.0)
    boxes, ignore = s.targets()
    # the second row has no head, the third a 1-pixel one: both gone from every kind
    np.testing.assert_allclose(boxes, [[14, 5, 20, 11]])
    np.testing.assert_allclose(s.boxes["full"], [[10, 5, 30, 35]])
    assert ignore.tolist() == [True] and s.ignore.tolist() == [False]  # head_attr.ignore
    full_targets = choose_targets(SampleSource([rec]).load(0), "full").targets()
    assert len(full_targets[0]) == 3 and not full_targets[1].any()


def test_collate_pads_with_explicit_masks_and_keeps_bgr_pixels(tmp_path):
    a = write_image(tmp_path / "a.png", 40, 80)
    write_image(tmp_path / "b.png", 70, 30, seed=1)
    recs = [
        record(tmp_path / "a.png", [[1, 1, 9, 9], [2, 2, 20, 30], [0, 0, 5, 5]], [0, 0, 1], "a"),
        record(tmp_path / "b.png", np.zeros((0, 4)), [], "b"),
    ]
    ds = eval_set(recs, 80)
    batch = collate([ds[0], ds[1]], size_divisor=32)
    assert batch.images.shape == (2, 3, 96, 96)  # max(40, 80) -> 64, max(80, 46) -> 96
    assert batch.images.dtype == torch.uint8
    assert torch.equal(batch.images[0, :, :40, :80], torch.from_numpy(a).permute(2, 0, 1))
    assert batch.image_sizes.tolist() == [[40, 80], [80, 34]]
    assert batch.valid.tolist() == [[True, True, True], [False, False, False]]
    assert batch.ignore.tolist() == [[False, False, True], [False, False, False]]
    assert batch.people.sum().item() == 2
    assert torch.all(batch.images[0, :, 40:, :] == 0)  # padding stays zero


def test_unreadable_image_is_skipped_and_counted(tmp_path):
    write_image(tmp_path / "ok.png")
    data = cv2.imencode(".jpg", np.full((50, 50, 3), 128, np.uint8))[1].tobytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])  # truncated JPEG
    recs = [
        record(tmp_path / "ok.png", [[1, 1, 9, 9]], [0], "ok"),
        record(tmp_path / "cut.jpg", [[1, 1, 9, 9]], [0], "cut"),
        record(tmp_path / "gone.jpg", [[1, 1, 9, 9]], [0], "gone"),
    ]
    ds = train_set(recs, 64, hflip=0.5)
    batch = collate([ds[i] for i in range(3)])
    assert batch.image_ids == ["ok"]
    assert sum(batch.skipped.values()) == 2 and len(batch.skipped) == 2
    assert [(i, k) for i, k, _ in batch.skipped_images] == [
        ("cut", "bad image"),
        ("gone", "missing"),
    ]


def test_a_record_with_only_full_boxes_loads_with_the_other_kinds_absent(tmp_path):
    write_image(tmp_path / "a.png", 40, 80)
    rec = ImageRecord(
        image_id="a",
        image_path=str(tmp_path / "a.png"),
        fbox=np.array([[10, 5, 30, 35], [40, 0, 60, 20]], np.float32),
        ignore=np.array([False, True]),
    )
    s = train_set([rec], 80, hflip=1.0)[0]
    np.testing.assert_allclose(s.targets()[0], [[50, 5, 70, 35], [20, 0, 40, 20]])
    assert s.targets()[1].tolist() == [False, True]
    assert np.isnan(s.boxes["visible"]).all() and np.isnan(s.boxes["head"]).all()
    assert s.boxes["head"].shape == (2, 4) and s.head_ignore.tolist() == [False, False]
