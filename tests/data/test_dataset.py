import cv2
import numpy as np
import torch

from crowdet.data.dataset import CrowdDataset, collate
from crowdet.data.records import ImageRecord


def write_image(path, h=40, w=80, seed=0):
    img = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    cv2.imwrite(str(path), img)
    return img


def record(path, fbox, ignore, image_id="a"):
    fbox = np.asarray(fbox, np.float32).reshape(-1, 4)
    n = len(fbox)
    return ImageRecord(
        image_id=image_id,
        image_path=str(path),
        fbox=fbox,
        vbox=fbox.copy(),
        hbox=np.full((n, 4), np.nan, np.float32),
        ignore=np.asarray(ignore, bool),
        head_ignore=np.zeros(n, bool),
        box_ids=np.arange(n),
        occ=np.zeros(n, np.float32),
    )


def test_letterbox_scales_boxes_and_keeps_amodal_boxes_for_eval(tmp_path):
    write_image(tmp_path / "a.png", 40, 80)
    rec = record(tmp_path / "a.png", [[10, 5, 30, 35], [-10, 0, 20, 50]], [False, False])
    s = CrowdDataset([rec], input_size=160, train=False)[0]
    assert s.image.shape == (80, 160, 3) and s.scale == 2.0
    np.testing.assert_allclose(s.boxes, [[20, 10, 60, 70], [-20, 0, 40, 100]])


def test_training_flip_clips_and_drops_tiny(tmp_path):
    write_image(tmp_path / "a.png", 40, 80)
    boxes = [[10, 5, 30, 35], [-10, 0, 20, 50], [79.5, 0, 90, 10]]
    rec = record(tmp_path / "a.png", boxes, [False, True, False])
    ds = CrowdDataset([rec], input_size=80, train=True, hflip=1.0, min_box_size=2.0)
    s = ds[0]
    # flipped x: x' = 80 - x; then clipped to [0, 80] x [0, 40]; the third box is 0.5 px wide
    np.testing.assert_allclose(s.boxes, [[50, 5, 70, 35], [60, 0, 80, 40]])
    assert s.ignore.tolist() == [False, True]


def test_collate_pads_with_explicit_masks(tmp_path):
    write_image(tmp_path / "a.png", 40, 80)
    write_image(tmp_path / "b.png", 70, 30, seed=1)
    recs = [
        record(tmp_path / "a.png", [[1, 1, 9, 9], [2, 2, 20, 30], [0, 0, 5, 5]], [0, 0, 1], "a"),
        record(tmp_path / "b.png", np.zeros((0, 4)), [], "b"),
    ]
    ds = CrowdDataset(recs, input_size=80)
    batch = collate([ds[0], ds[1]], size_divisor=32)
    assert batch.images.shape == (2, 3, 96, 96)  # max(40, 80) -> 64, max(80, 46) -> 96
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
    ds = CrowdDataset(recs, input_size=64)
    batch = collate([ds[i] for i in range(3)])
    assert batch.image_ids == ["ok"]
    assert sum(batch.skipped.values()) == 2 and len(batch.skipped) == 2
