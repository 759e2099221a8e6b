"""The synthetic crowd generator: layout, determinism, schema, boxes against pixels, statistics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from crowdet.boxes import iou
from crowdet.cli import main as cli_main
from crowdet.data.odgt import read_odgt_report
from crowdet.data.synth import PRESETS, dataset_exists, generate_dataset, worker
from crowdet.data.synth.draw import Sprite, paste
from crowdet.data.synth.person import render_person
from crowdet.data.synth.render import _draw_all, _measure
from crowdet.data.synth.scene import SPACING, power_law, sample_layout
from crowdet.errors import CrowdetError

# keys of a person entry in a real CrowdHuman line (mmdetection's test annotation_train.odgt)
PERSON_KEYS = {"tag", "fbox", "vbox", "hbox", "extra", "head_attr"}
EXTRA_KEYS = {"box_id", "occ"}
HEAD_KEYS = {"ignore", "occ", "unsure"}


def read_lines(path: Path) -> list[dict]:
    return [json.loads(t) for t in path.read_text().splitlines()]


def people(obj: dict) -> list[dict]:
    return [g for g in obj["gtboxes"] if g["tag"] == "person"]


def xyxy(boxes) -> torch.Tensor:
    b = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return torch.cat([b[:, :2], b[:, :2] + b[:, 2:]], 1)


def pairs_above(obj: dict, t: float) -> int:
    f = xyxy([g["fbox"] for g in people(obj)])
    return int((torch.triu(iou(f, f), diagonal=1) > t).sum())


@pytest.fixture(scope="module")
def demo_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    summary = generate_dataset(out, 60, 4, preset="demo", seed=0, workers=1, progress=False)
    lines = read_lines(out / "annotation_train.odgt") + read_lines(out / "annotation_val.odgt")
    return out, summary, lines


# ---------------------------------------------------------------- building blocks


def test_power_law_matches_its_analytic_mean():
    rng = np.random.default_rng(0)
    h = power_law(rng, 1.0, 4.0, 2.0, 40000)
    # p(h) ~ h^-2 on [1, 4]: mean = ln 4 / (1 - 1/4)
    assert h.min() >= 1.0 and h.max() <= 4.0
    assert h.mean() == pytest.approx(np.log(4.0) / 0.75, rel=0.01)
    g = power_law(rng, 1.0, 4.0, 1.0, 40000)  # log-uniform: mean = 3 / ln 4
    assert g.mean() == pytest.approx(3.0 / np.log(4.0), rel=0.01)


def test_people_keep_their_distance_on_the_ground():
    cfg = PRESETS["crowdhuman"]
    for i in range(10):
        lay = sample_layout(cfg, np.random.default_rng(i))
        x, foot, h = lay.people.T
        scale = (foot - lay.horizon) * lay.ratio  # px per person height at each depth
        z, lateral = cfg.height / scale, (x - cfg.width / 2) / scale
        d = np.hypot(z[:, None] - z[None], lateral[:, None] - lateral[None])
        assert (d[np.triu_indices(len(z), 1)] >= SPACING - 1e-9).all()
        assert (h >= lay.min_h - 1e-9).all()
        for _, _, _, h_hi, _ in lay.patches:  # far crowds are all smaller than annotated people
            assert h_hi < lay.min_h


@pytest.mark.parametrize("height", [16.0, 57.3, 400.0])
def test_person_sprite_has_the_requested_height_and_stands_on_its_feet(height):
    rng = np.random.default_rng(int(height))
    for _ in range(20):
        s = render_person(height, (100.0, 300.0), rng)
        (x0, y0, x1, y1), n = s.bbox()
        (hx0, hy0, hx1, hy1), nh = s.bbox((1, 2, 3, 4))
        assert n > 0 and nh > 0
        assert y1 == pytest.approx(300.0, abs=1.5)  # the sole on the foot point
        top = 300.0 - height  # the top of the head (a hat may stick out by 1% of the height)
        assert top - 0.01 * height - 1.5 <= hy0 <= top + 1.5
        assert hy0 - 0.1 * height <= y0 <= hy0  # a raised hand may reach a little higher
        assert x0 <= hx0 and hx1 <= x1 and hy1 <= y1
        assert hy1 - hy0 <= 0.2 * height + 1.5


def _paste_reference(image, owner, parts, x0, y0, palette, pid):
    for r in range(parts.shape[0]):
        for c in range(parts.shape[1]):
            y, x = y0 + r, x0 + c
            if parts[r, c] and 0 <= y < image.shape[0] and 0 <= x < image.shape[1]:
                image[y, x] = palette[parts[r, c]]
                owner[y, x] = pid


@settings(max_examples=40, deadline=None)
@given(
    x0=st.integers(-12, 14),
    y0=st.integers(-12, 14),
    h=st.integers(1, 10),
    w=st.integers(1, 10),
    seed=st.integers(0, 2**16),
)
def test_paste_matches_a_pixel_by_pixel_reference(x0, y0, h, w, seed):
    rng = np.random.default_rng(seed)
    parts = rng.integers(0, 4, (h, w)).astype(np.uint8)
    palette = rng.integers(0, 256, (4, 3)).astype(np.uint8)
    image = rng.integers(0, 256, (8, 9, 3)).astype(np.uint8)
    owner = rng.integers(0, 3, (8, 9)).astype(np.int32)
    ref_image, ref_owner = image.copy(), owner.copy()
    partmap = np.zeros((8, 9), np.uint8)
    n = paste(image, owner, partmap, Sprite(parts, x0, y0, palette), 7)
    _paste_reference(ref_image, ref_owner, parts, x0, y0, palette, 7)
    np.testing.assert_array_equal(image, ref_image)
    np.testing.assert_array_equal(owner, ref_owner)
    assert n == int((ref_owner == 7).sum())


@pytest.mark.parametrize("preset,seed", [("demo", 3), ("crowdhuman", 4)])
def test_visible_boxes_and_flags_match_a_slow_reference(preset, seed):
    cfg = PRESETS[preset]
    _, owner, partmap, drawn, _ = _draw_all(cfg, np.random.default_rng(seed))
    ann = _measure(cfg, owner, partmap, drawn)
    exp_vbox, exp_occ = [], []
    for pid, (fbox, _, full, inside, _, _) in enumerate(drawn, 1):
        ys, xs = np.nonzero(owner == pid)
        if len(ys) == 0 or len(ys) < cfg.min_visible * full:
            continue  # not annotated
        exp_vbox.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        exp_occ.append(len(ys) / inside < cfg.occ_threshold)
        # every visible pixel lies inside the amodal full box
        assert fbox[0] <= xs.min() and xs.max() < fbox[2] and fbox[1] <= ys.min()
    assert len(exp_vbox) == len(ann["vbox"]) > 0
    np.testing.assert_array_equal(ann["vbox"], np.array(exp_vbox, np.float32))
    np.testing.assert_array_equal(ann["occ"], np.array(exp_occ))


# ---------------------------------------------------------------- the written dataset


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_dataset(a, 4, 2, size=(160, 120), seed=5, workers=1, progress=False)
    generate_dataset(b, 4, 2, size=(160, 120), seed=5, workers=2, progress=False)
    generate_dataset(c, 4, 2, size=(160, 120), seed=6, workers=1, progress=False)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 6 + 4  # images, two annotation files, synth.json, .crowdet-synth
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    differ = [(a / f).read_bytes() != (c / f).read_bytes() for f in files if f.suffix == ".jpg"]
    assert all(differ)
    assert (a / "annotation_train.odgt").read_text() != (c / "annotation_train.odgt").read_text()


def test_every_line_has_the_crowdhuman_schema(demo_set):
    out, _, lines = demo_set
    ids = [obj["ID"] for obj in lines]
    assert ids[0] == "synth_train_000001" and ids[-1] == "synth_val_000004"
    assert len(set(ids)) == len(ids) == 64
    for obj in lines:
        assert (out / "Images" / f"{obj['ID']}.jpg").is_file()
        assert obj["width"] == 320 and obj["height"] == 240
        for g in obj["gtboxes"]:
            for key in ("fbox", "vbox", "hbox"):
                assert len(g[key]) == 4 and all(type(v) is int for v in g[key])
                assert g[key][2] > 0 and g[key][3] > 0
            if g["tag"] == "person":
                assert g.keys() == PERSON_KEYS
                assert g["extra"].keys() == EXTRA_KEYS and g["head_attr"].keys() == HEAD_KEYS
                assert g["extra"]["occ"] in (0, 1) and g["head_attr"]["occ"] in (0, 1)
                assert g["head_attr"]["unsure"] == 0 and g["head_attr"]["ignore"] in (0, 1)
            else:
                assert g["tag"] == "mask" and g["extra"] == {"ignore": 1}
                assert g["head_attr"] == {} and g["fbox"] == g["vbox"] == g["hbox"]
        box_ids = [g["extra"]["box_id"] for g in people(obj)]
        assert box_ids == list(range(len(box_ids)))
    _, report = read_odgt_report(out / "annotation_train.odgt")
    assert report.found == 60 and report.num_errors == 0


def test_boxes_are_consistent(demo_set):
    _, _, lines = demo_set
    outside = 0
    for obj in lines:
        W, H = obj["width"], obj["height"]
        for g in people(obj):
            (fx, fy, fw, fh), (vx, vy, vw, vh), (hx, hy, hw, hh) = g["fbox"], g["vbox"], g["hbox"]
            assert fx <= vx and vx + vw <= fx + fw and fy <= vy and vy + vh <= fy + fh
            assert fx <= hx and hx + hw <= fx + fw and fy <= hy and hy + hh <= fy + fh
            assert hy - fy <= 0.15 * fh + 1  # the head is at the top of the body
            assert 0 <= vx and vx + vw <= W and 0 <= vy and vy + vh <= H
            outside += fx < 0 or fy < 0 or fx + fw > W or fy + fh > H
        for g in obj["gtboxes"]:
            if g["tag"] == "mask":
                x, y, w, h = g["fbox"]
                assert 0 <= x and x + w <= W and 0 <= y and y + h <= H
    assert outside > 20  # full boxes extend past the border


def test_occlusion_really_happens(demo_set):
    _, _, lines = demo_set
    ratios = np.array(
        [
            g["vbox"][2] * g["vbox"][3] / (g["fbox"][2] * g["fbox"][3])
            for o in lines
            for g in people(o)
        ]
    )
    occ = np.array([g["extra"]["occ"] for o in lines for g in people(o)])
    assert (ratios < 0.3).mean() > 0.1  # many people are mostly hidden
    assert (ratios > 0.95).mean() > 0.1  # and many are not
    assert 0.2 < occ.mean() < 0.9


def test_demo_statistics(demo_set):
    _, summary, lines = demo_set
    n_people = np.array([len(people(o)) for o in lines])
    pairs = np.array([pairs_above(o, 0.5) for o in lines])
    heights = np.array([g["fbox"][3] for o in lines for g in people(o)])
    assert n_people.mean() >= 12
    assert pairs.mean() >= 1.0
    assert heights.min() >= 16  # nobody tiny outside an ignore region
    assert heights.max() >= 0.8 * 240  # and some people fill most of the image height
    assert summary["images"] == 64
    assert summary["people_per_image"] == pytest.approx(n_people.mean())
    assert summary["pairs_iou50_per_image"] == pytest.approx(pairs.mean())


@pytest.mark.slow
def test_crowdhuman_statistics(tmp_path):
    summary = generate_dataset(
        tmp_path, 60, 0, preset="crowdhuman", seed=0, workers=2, progress=False
    )
    lines = read_lines(tmp_path / "annotation_train.odgt")
    assert lines[0]["width"] == 1024 and lines[0]["height"] == 768
    n_people = np.mean([len(people(o)) for o in lines])
    pairs = np.mean([pairs_above(o, 0.5) for o in lines])
    # CrowdHuman (Shao et al. 2018): 22.6 people and 2.40 pairs with IoU > 0.5 per image
    assert abs(n_people - 22.6) <= 3.0
    assert abs(pairs - 2.4) <= 0.8
    assert np.mean([pairs_above(o, 0.7) for o in lines]) < pairs / 2
    assert summary["people_per_image"] == pytest.approx(n_people)
    assert summary["ignore_regions_per_image"] > 0.3


# ---------------------------------------------------------------- API and command line


def test_dataset_exists_only_after_a_complete_run(tmp_path, monkeypatch):
    assert not dataset_exists(tmp_path)
    generate_dataset(tmp_path, 2, 1, size=(96, 80), workers=1, progress=False)
    assert dataset_exists(tmp_path)
    calls = []

    def fail_third(*args):
        calls.append(args)
        if len(calls) == 3:
            raise RuntimeError("interrupted")
        return real(*args)

    real = worker.make_image
    monkeypatch.setattr(worker, "make_image", fail_third)
    with pytest.raises(RuntimeError):
        generate_dataset(tmp_path, 4, 1, size=(96, 80), seed=1, workers=1, progress=False)
    # the old annotations are gone: nothing points at images of the half-written run
    assert not dataset_exists(tmp_path)
    assert not (tmp_path / "annotation_train.odgt").exists()
    assert not list((tmp_path / "Images").glob(".*.tmp"))


def test_bad_arguments_are_user_errors(tmp_path):
    with pytest.raises(CrowdetError, match="num_train"):
        generate_dataset(tmp_path, -1, 0)
    with pytest.raises(CrowdetError, match="preset"):
        generate_dataset(tmp_path, 1, 0, preset="nope")
    with pytest.raises(CrowdetError, match="too small"):
        generate_dataset(tmp_path, 1, 0, size=(8, 8))
    (tmp_path / "file").write_text("x")
    with pytest.raises(CrowdetError, match="not a folder"):
        generate_dataset(tmp_path / "file", 1, 0)


def test_cli_writes_and_prints_the_summary(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = [
        "synth",
        str(out),
        "--train",
        "2",
        "--val",
        "1",
        "--size",
        "128",
        "96",
        "--seed",
        "3",
        "--workers",
        "1",
    ]
    assert cli_main(argv) == 0
    text = capsys.readouterr().out
    assert "people per image" in text and "pairs IoU>0.5 per image" in text
    assert dataset_exists(out)
    info = json.loads((out / "synth.json").read_text())
    assert info["seed"] == 3 and info["config"]["width"] == 128 and info["preset"] == "demo"
    assert info["summary"]["images"] == 3
    assert cli_main(["synth", str(out), "--train", "-1"]) == 2
    assert "num_train" in capsys.readouterr().err


def test_refuses_a_folder_holding_another_dataset(tmp_path, capsys):
    out = tmp_path / "theirs"
    (out / "Images").mkdir(parents=True)
    (out / "Images" / "own.jpg").write_bytes(b"their picture")
    (out / "annotation_train.odgt").write_text('{"ID": "own", "gtboxes": []}\n')
    argv = ["synth", str(out), "--train", "1", "--val", "0", "--size", "96", "80", "--workers", "1"]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert f"{out} is not empty (Images/, annotation_train.odgt)" in err and "--force" in err
    assert (out / "annotation_train.odgt").read_text() == '{"ID": "own", "gtboxes": []}\n'
    assert sorted(p.name for p in (out / "Images").iterdir()) == ["own.jpg"]
    assert cli_main([*argv, "--force"]) == 0 and dataset_exists(out)


def test_rewrites_its_own_folder_even_after_an_interruption(tmp_path):
    out = tmp_path / "ours"
    generate_dataset(out, 1, 0, size=(96, 80), workers=1, progress=False)
    assert dataset_exists(out)
    generate_dataset(out, 2, 0, size=(96, 80), workers=1, progress=False)  # synth.json there
    (out / "synth.json").unlink()  # as after a run interrupted before its end
    for name in ("annotation_train.odgt", "annotation_val.odgt"):
        (out / name).unlink()
    generate_dataset(out, 1, 1, size=(96, 80), workers=1, progress=False)  # the marker is there
    assert len(read_lines(out / "annotation_val.odgt")) == 1
