"""The strong augmentation in the dataset: reproducible for a seed, independent of the number of
workers, different across samples and epochs, switched off without a trace, no cap on people;
mixup's blend; the config keys that build it."""

import numpy as np
import pytest
import torch
from paint import Source, scene

from crowdet.config import load_config
from crowdet.data.augment import CopyPaste, MixUp, Mosaic, RandomAffine, strong_transforms
from crowdet.data.collate import collate
from crowdet.data.cut import cut
from crowdet.data.dataset import CrowdDataset, SampleSource
from crowdet.data.pipeline import HSV, HFlip, KeepRatio, Letterbox, train_transforms
from crowdet.data.records import ImageRecord
from crowdet.engine.data import build_dataset, strong_until

STRONG = [
    "augment.mosaic=0.8", "augment.mixup=0.5", "augment.affine=0.8", "augment.crop=0.3",
    "augment.copy_paste=0.5", "augment.affine_degrees=5",
]  # fmt: skip


def crowd_records(tmp_path, n=6, people=30, size=(90, 120)):
    """n images on disk, each with `people` random people (full, visible, head) and 2 ignore
    regions."""
    import cv2

    recs = []
    for i in range(n):
        rng = np.random.default_rng(i)
        h, w = size
        path = tmp_path / f"im{i}.png"
        cv2.imwrite(str(path), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        xy = rng.uniform(-10, [w - 5, h - 5], (people + 2, 2))
        wh = rng.uniform(6, 30, (people + 2, 2))
        full = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        vis = full + np.array([1, 1, -1, -3], np.float32)
        head = np.concatenate([full[:, :2] + 1, full[:, :2] + 5], 1).astype(np.float32)
        ignore = np.arange(people + 2) >= people
        recs.append(
            ImageRecord(
                f"im{i}", str(path), fbox=full, vbox=vis, hbox=head, ignore=ignore,
                head_ignore=np.zeros(people + 2, bool), box_ids=np.arange(people + 2),
                occ=np.zeros(people + 2, np.float32),
            )
        )  # fmt: skip
    return recs


def strong_set(tmp_path, seed=0, *extra):
    cfg = load_config(None, ["data.input_size=96", "augment.hsv=[0.015,0.5,0.3]", *STRONG, *extra])
    cfg.train.seed = seed
    return build_dataset(cfg, crowd_records(tmp_path), train=True)


def batches(ds, workers):
    order = [[0, 3, 5], [1, 2, 4]]
    loader = torch.utils.data.DataLoader(
        ds, batch_sampler=order, num_workers=workers, collate_fn=collate
    )
    return list(loader)


FIELDS = ("images", "image_sizes", "boxes", "valid", "ignore")


@pytest.mark.slow
def test_strong_samples_are_seeded_worker_proof_and_resumable(tmp_path):
    ds = strong_set(tmp_path)
    one, two = batches(ds, 0), batches(ds, 2)
    again = batches(strong_set(tmp_path), 0)
    for a, b, c in zip(one, two, again, strict=True):
        for field in FIELDS:
            assert torch.equal(getattr(a, field), getattr(b, field)), field
            assert torch.equal(getattr(a, field), getattr(c, field)), field
    ds.set_epoch(1)
    later = batches(ds, 0)
    assert any(not torch.equal(a.images, b.images) for a, b in zip(one, later))
    # a resumed run builds its dataset afresh and sets the epoch: the same samples
    resumed = strong_set(tmp_path)
    resumed.set_epoch(1)
    for a, b in zip(later, batches(resumed, 0), strict=True):
        for field in FIELDS:
            assert torch.equal(getattr(a, field), getattr(b, field)), field
    other_seed = batches(strong_set(tmp_path, seed=1), 0)
    assert any(not torch.equal(a.boxes, b.boxes) for a, b in zip(one, other_seed))


def test_samples_differ_across_indices(tmp_path):
    ds = strong_set(tmp_path, 0, "augment.mosaic=1.0")
    images = [ds[i].image for i in range(6)]
    for i in range(6):
        for j in range(i + 1, 6):
            assert images[i].shape != images[j].shape or not np.array_equal(images[i], images[j])


def test_switched_off_is_the_pipeline_without_them(tmp_path):
    ds = strong_set(tmp_path)
    ds.set_strong(False)
    cfg = load_config(None, ["data.input_size=96", "augment.hsv=[0.015,0.5,0.3]"])
    plain = build_dataset(cfg, crowd_records(tmp_path), train=True)
    assert not plain.transforms[0].fast and ds.transforms[0].fast
    plain.transforms[0].fast = True  # with strong augmentation the resize is linear throughout
    for i in range(6):
        a, b = ds[i], plain[i]
        assert np.array_equal(a.image, b.image)
        assert np.array_equal(a.targets()[0], b.targets()[0])


def test_default_config_has_no_strong_transform(tmp_path):
    cfg = load_config("configs/demo.yaml", ["data.synth=null"])
    assert not cfg.augment.strong()
    ds = build_dataset(cfg, crowd_records(tmp_path, n=1), train=True)
    assert [type(t) for t in ds.transforms] == [Letterbox, HFlip, HSV]
    keep = load_config(None, ["data.resize=keep_ratio", "augment.multi_scale=[64,80]"])
    ds = build_dataset(keep, crowd_records(tmp_path, n=1), train=True)
    assert isinstance(ds.transforms[0], KeepRatio) and ds.transforms[0].sizes == [64, 80]


def test_strong_transforms_order_and_mixup_reads_mosaics():
    cfg = load_config(None, STRONG)
    resize = Letterbox(96)
    ts = strong_transforms(Source([scene(0)]), resize, cfg.augment)
    names = [type(t).__name__ for t in ts]
    assert names == ["Mosaic", "MixUp", "CopyPaste", "RandomCrop", "RandomAffine"]
    assert ts[1].before == [resize, ts[0]]
    assert all(t.strong for t in ts)


@pytest.mark.parametrize(
    ("off", "max_iters", "want"), [(0, 100, 100), (0.15, 100, 85), (15, 100, 85), (200, 100, 0)]
)
def test_strong_until(off, max_iters, want):
    cfg = load_config(None, [f"augment.strong_off_last={off}"])
    assert strong_until(cfg, max_iters) == want


def test_mixup_blends_and_keeps_both_sets_of_rows():
    a, b = scene(0), scene(1, h=100, w=180)
    rng = np.random.default_rng(3)
    out = MixUp(Source([b]), [], 1.0, 0.0)(a, rng)
    rng = np.random.default_rng(3)
    rng.random(), rng.integers(1)
    r = rng.beta(32.0, 32.0)
    layer = np.full((120, 160, 3), 114.0)
    layer[:100] = b.image[:, :160]
    want = np.round(a.image * r + layer * (1 - r))
    assert np.abs(out.image.astype(np.float64) - want).max() <= 1
    assert len(out) == 10
    np.testing.assert_array_equal(out.boxes["full"][:5], a.boxes["full"])
    cut_b = cut(b, (0, 0, 160, 100), 0.0)
    np.testing.assert_array_equal(out.boxes["visible"][5:], cut_b.boxes["visible"])
    assert out.ignore.tolist() == [*a.ignore, *cut_b.ignore]


def many_people(n=500, size=1000, seed=0):
    """n people of 20 x 40 pixels on a grid, no two overlapping, all inside the image."""
    rng = np.random.default_rng(seed)
    cols = size // 40
    idx = np.arange(n)
    xy = np.stack([idx % cols * 40 + 5, idx // cols * 45 + 2], 1).astype(np.float32)
    full = np.concatenate([xy, xy + [20, 40]], 1).astype(np.float32)
    image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    from crowdet.data.sample import Sample

    boxes = {
        "full": full,
        "visible": full + [2, 2, -2, -10],
        "head": full[:, [0, 1, 0, 1]] + [5, 0, 12, 8],
    }
    return Sample(
        image, "crowd", boxes, np.zeros(n, bool), np.zeros(n, bool), orig_size=(size, size)
    )


def test_500_people_pass_through(tmp_path):
    s = many_people()
    rng = np.random.default_rng(0)
    out = train_transforms(1000, hflip=1.0)
    for t in out:
        s = t(s, rng)
    batch = collate([s])
    assert int(batch.valid.sum()) == 500
    still = RandomAffine(1.0, (1, 1), 0.0, 0.0, 0.0)(many_people(), rng)
    assert len(still) == 500


def test_500_people_in_a_mosaic_counted_by_the_rule():
    """Each tile keeps exactly the people whose visible box reaches into its window (a slow
    per-person count), all four tiles of 500 people each."""
    tiles = [many_people(seed=k) for k in range(4)]
    source = Source(tiles[1:])
    rng = np.random.default_rng(7)
    out = Mosaic(source, [], 1.0, 0.25)(tiles[0], rng)
    rng = np.random.default_rng(7)
    rng.random()
    picks = [int(rng.integers(3)) for _ in range(3)]
    cx, cy = (int(v) for v in rng.uniform(0.25, 0.75, 2) * (1000, 1000))
    want = 0
    for k, tile in enumerate([tiles[0], *(tiles[1:][p] for p in picks)]):
        ox = cx - 1000 if k in (0, 2) else cx
        oy = cy - 1000 if k in (0, 1) else cy
        x1, y1, x2, y2 = max(ox, 0), max(oy, 0), min(ox + 1000, 1000), min(oy + 1000, 1000)
        for bx1, by1, bx2, by2 in tile.boxes["visible"] + [ox, oy, ox, oy]:
            if min(bx2, x2) > max(bx1, x1) and min(by2, y2) > max(by1, y1):
                want += 1
    assert len(out) == want > 500


def test_copy_paste_removes_a_person_covered_whole_and_makes_a_sliver_ignore():
    target = scene(0)
    v0, v1 = target.boxes["visible"][0], target.boxes["visible"][1]
    other = scene(1)
    rows = np.zeros(5, bool)
    rows[:2] = True
    other = other.take(rows)
    # person 0 covered whole; person 1 covered but for a 3-pixel strip on its left (< 25 %)
    other.boxes["visible"][0] = [v0[0] - 1, v0[1] - 1, v0[2] + 1, v0[3] + 1]
    other.boxes["visible"][1] = [v1[0] + 3, v1[1] - 1, v1[2] + 1, v1[3] + 1]
    other.boxes["head"][:] = np.nan
    out = CopyPaste(Source([other]), [], 1.0, max_people=8, min_visible=0.25)(
        target, np.random.default_rng(1)
    )
    assert len(out) == 4 - 1 + 1 + 2  # 4 people + 1 region - person 0 + 2 pasted
    np.testing.assert_array_equal(out.boxes["visible"][0], [v1[0], v1[1], v1[0] + 3, v1[3]])
    assert out.ignore[0] and np.isnan(out.boxes["head"][0]).all()


def test_keep_ratio_eval_and_multi_scale_collate(tmp_path):
    recs = crowd_records(tmp_path, n=3, size=(90, 120))
    cfg = load_config(
        None, ["data.resize=keep_ratio", "data.min_size=60", "data.max_size=100",
               "augment.multi_scale=[45,60,75]", "data.size_divisor=32"]
    )  # fmt: skip
    ev = build_dataset(cfg, recs, train=False)
    assert ev[0].image.shape[:2] == (60, 80)
    tr = build_dataset(cfg, recs, train=True)
    heights = {tr[i].image.shape[0] for i in range(3) for tr.epoch in range(6)}
    assert heights <= {45, 60, 75} and len(heights) > 1
    batch = collate([tr[0], tr[1], tr[2]])
    assert batch.images.shape[-2] % 32 == 0 and batch.images.shape[-1] % 32 == 0


def test_source_load_is_not_changed_by_the_transforms(tmp_path):
    source = SampleSource(crowd_records(tmp_path, n=2))
    before = source.load(1)
    ds = CrowdDataset(source, [Mosaic(source, [], 1.0, 0.25), CopyPaste(source, [], 1.0)], seed=3)
    ds[0]
    after = source.load(1)
    assert np.array_equal(before.image, after.image)
    for k in before.boxes:
        np.testing.assert_array_equal(before.boxes[k], after.boxes[k])


def test_preprocess_keep_ratio_as_evaluation():
    from crowdet.data.preprocess import preprocess

    image = np.zeros((90, 120, 3), np.uint8)
    batch = preprocess([image], 320, 32, "keep_ratio", 60, 100)
    assert batch.image_sizes.tolist() == [[60, 80]] and batch.images.shape[-2:] == (64, 96)
    assert batch.scales.tolist() == pytest.approx([60 / 90])
    capped = preprocess([image], 320, 32, "keep_ratio", 90, 100)  # 90 / 90 would make 120 wide
    assert capped.image_sizes.tolist() == [[75, 100]]
