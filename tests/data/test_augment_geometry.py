"""Every geometric transform, and their composition, checked against the pixels: scenes of filled
rectangles in distinct colours (tests/data/paint.py) are transformed, and every full, visible and
head box and ignore region is compared with the pixels of its colours."""

from dataclasses import replace

import numpy as np
import pytest
from paint import Source, check, labels, scene

from crowdet.data.augment import CopyPaste, Mosaic, RandomAffine, RandomCrop
from crowdet.data.pipeline import HFlip, KeepRatio, Letterbox, run_transforms

rng = np.random.default_rng


def test_the_scenes_pass_their_own_check():
    for k in range(4):
        assert check(scene(k), tol=0) == 5


def test_the_check_fails_for_a_wrong_box():
    s = scene(0)
    for kind in ("full", "visible", "head"):
        moved = {k: b.copy() for k, b in s.boxes.items()}
        moved[kind][0] += [3, 0, 3, 0]
        with pytest.raises(AssertionError):
            check(replace(s, boxes=moved), tol=2)
    with pytest.raises(AssertionError):  # a person dropped
        check(s.take(np.array([False, True, True, True, True])), tol=2)


@pytest.mark.parametrize(
    "transform",
    [Letterbox(200), Letterbox(128), KeepRatio(90, 1000), KeepRatio(200, 230)],
    ids=["letterbox-up", "letterbox-down", "keep-ratio", "keep-ratio-capped"],
)
def test_resizes(transform):
    for k in range(4):
        out = transform(scene(k), rng(k))
        assert check(out, tol=2.5) == 5


def test_flip_is_exact():
    for k in range(4):
        assert check(HFlip(1.0)(scene(k), rng(0)), tol=0) == 5


def test_keep_ratio_sizes():
    s = scene(0, h=120, w=160)
    assert KeepRatio(90, 1000)(s, None).image.shape[:2] == (90, 120)
    assert KeepRatio(200, 230)(s, None).image.shape[:2] == (172, 230)  # longer side capped
    sizes = {KeepRatio(90, 1000, sizes=[60, 90])(s, rng(i)).image.shape[0] for i in range(20)}
    assert sizes == {60, 90}
    sides = {Letterbox(320, sizes=[64, 96])(s, rng(i)).image.shape[1] for i in range(20)}
    assert sides == {64, 96}


@pytest.mark.parametrize("seed", range(6))
def test_random_affine(seed):
    t = RandomAffine(1.0, scale=(0.6, 1.4), translate=0.15, degrees=8, shear=4, min_visible=0.0)
    out = t(scene(seed % 4, seed=seed), rng(seed))
    assert check(out, tol=4.0) >= 1


def test_affine_identity_keeps_pixels_and_boxes():
    s = scene(1)
    out = RandomAffine(1.0, scale=(1, 1), translate=0, degrees=0, shear=0)(s, rng(0))
    assert np.array_equal(out.image, s.image)
    for k in s.boxes:
        np.testing.assert_allclose(out.boxes[k], s.boxes[k], atol=1e-4)


@pytest.mark.parametrize("seed", range(6))
def test_mosaic(seed):
    source = Source([scene(k, h=100 + 10 * k, w=150 - 10 * k, seed=seed) for k in range(4)])
    out = Mosaic(source, [], 1.0, min_visible=0.0)(source.load(seed % 4), rng(seed))
    assert out.image.shape == source.load(seed % 4).image.shape
    assert check(out, tol=0.0) >= 1


@pytest.mark.parametrize("seed", range(6))
def test_random_crop(seed):
    out = RandomCrop(1.0, (0.4, 0.8), min_visible=0.0)(scene(seed % 4, seed=seed), rng(seed))
    assert out.image.shape == (120, 160, 3)
    assert check(out, tol=3.0) >= 1


@pytest.mark.parametrize("seed", range(6))
def test_copy_paste_occludes(seed):
    source = Source([scene(k, seed=seed + 10) for k in (1, 2, 3)])  # colours apart from 0's
    target = scene(0, seed=seed)
    out = CopyPaste(source, [], 1.0, max_people=4, min_visible=0.0)(target, rng(seed))
    assert len(out) > len(target) - 4
    assert check(out, tol=0.0, amodal=True) >= 1


def test_copy_paste_shrinks_the_visible_box_of_the_person_under_it():
    target = scene(0)
    other = scene(1)
    # one person of the other scene whose visible box covers the right half of person 0's
    v = target.boxes["visible"][0]
    mid = float(np.floor((v[0] + v[2]) / 2))
    other.boxes["visible"][0] = [mid, v[1] - 2, v[2] + 3, v[3] + 2]
    other.boxes["full"][0] = other.boxes["visible"][0]
    other.boxes["head"][0] = np.nan
    keep = np.arange(5) == 0
    source = Source([other.take(keep)])
    out = CopyPaste(source, [], 1.0, max_people=1, min_visible=0.0)(target, rng(0))
    np.testing.assert_allclose(out.boxes["visible"][0], [v[0], v[1], mid, v[3]])
    np.testing.assert_allclose(out.boxes["full"][0], target.boxes["full"][0])  # amodal
    assert len(out) == 6 and not out.ignore[0]


@pytest.mark.parametrize("seed", range(8))
def test_composition_with_interpolation(seed):
    source = Source([scene(k, h=100 + 10 * k, w=150 - 10 * k, seed=seed) for k in range(4)])
    resize = Letterbox(200, (0.8, 1.2))
    transforms = [
        resize,
        Mosaic(Source(source.samples[1:]), [resize], 0.7, 0.0),
        RandomCrop(0.5, (0.5, 0.9), 0.0),
        RandomAffine(0.7, (0.7, 1.3), 0.1, 5, 3, 0.0),
        HFlip(0.5),
    ]
    out = run_transforms(transforms, source.load(0), rng(seed))
    assert check(out, tol=4.0) >= 1


@pytest.mark.parametrize("seed", range(8))
def test_composition_exact(seed):
    """Pixel-exact steps (mosaic, copy-paste, flip): every box to the pixel. (Occlusion after
    an interpolating step can leave strips thinner than the blur of the edges, which pixels
    cannot check.)"""
    source = Source([scene(k, seed=seed) for k in range(4)])
    transforms = [
        Mosaic(Source(source.samples[1:3]), [], 0.7, 0.0),  # colours apart from
        CopyPaste(Source(source.samples[3:]), [], 0.7, 3, 0.0),  # each other's
        HFlip(0.5),
    ]
    out = run_transforms(transforms, source.load(0), rng(seed))
    assert check(out, tol=0.0, amodal=True) >= 1


def test_labels_tell_blends_apart():
    image = np.zeros((1, 3, 3), np.uint8)
    image[0, 0], image[0, 1], image[0, 2] = (85, 0, 0), (42, 0, 0), (114, 114, 114)
    lab = labels(image)
    assert lab[0, 0] >= 0 and lab[0, 1] == -1 and lab[0, 2] == -1
