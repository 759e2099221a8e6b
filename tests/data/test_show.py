"""Pictures: each box kind in its colour, hatched translucent ignore regions, legend, command."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from crowdet.cli import main
from crowdet.data.records import ImageRecord
from crowdet.data.show import (
    FULL_COLOR,
    HEAD_COLOR,
    IGNORE_COLOR,
    VISIBLE_COLOR,
    draw_record,
    pad_for_boxes,
    safe_name,
    shade_regions,
)


def record() -> ImageRecord:
    nan = [np.nan] * 4
    return ImageRecord(
        "a/b",
        fbox=np.array([[20, 20, 80, 180], [120, 30, 190, 100], [200, 100, 260, 190]], np.float32),
        vbox=np.array([[30, 40, 70, 150], nan, nan], np.float32),
        hbox=np.array([[40, 22, 60, 45], nan, nan], np.float32),
        ignore=np.array([False, True, False]),
        head_ignore=np.zeros(3, bool),
        box_ids=np.arange(3),
        occ=np.zeros(3, np.float32),
    )


def test_colours_where_expected():
    image = np.full((200, 300, 3), 128, np.uint8)
    out = draw_record(image, record(), legend=False)
    assert tuple(out[100, 20]) == FULL_COLOR  # left edge of the full box
    assert tuple(out[100, 30]) == VISIBLE_COLOR  # left edge of the visible box
    assert tuple(out[30, 40]) == HEAD_COLOR  # left edge of the head box
    assert tuple(out[65, 120]) == IGNORE_COLOR  # edge of the ignore region
    inside = out[35:95, 125:185].reshape(-1, 3).astype(int)
    tinted = np.round(128 * 0.7 + np.array(IGNORE_COLOR) * 0.3).astype(int)
    hatched = (inside == IGNORE_COLOR).all(1)
    assert 0.05 < hatched.mean() < 0.5  # stripes
    assert (np.abs(inside[~hatched] - tinted) <= 1).all()  # translucent elsewhere
    assert (out[150:170, 100:110] == 128).all()  # untouched background
    assert (image == 128).all()  # input not modified


def test_legend_drawn_above_the_image():
    image = np.full((200, 300, 3), 128, np.uint8)
    out = draw_record(image, record())
    bar = out.shape[0] - 200
    assert bar > 20 and out.shape[1] == 300
    np.testing.assert_array_equal(out[bar:], draw_record(image, record(), legend=False))
    strip = out[:bar]
    assert (strip > 200).all(2).mean() > 0.6  # mostly white
    for colour in (FULL_COLOR, VISIBLE_COLOR, HEAD_COLOR, IGNORE_COLOR):
        assert (strip == colour).all(2).sum() > 30  # one swatch per colour


def test_shade_clips_to_image():
    image = np.zeros((10, 10, 3), np.uint8)
    shade_regions(image, np.array([[-5, -5, 3, 3], [20, 20, 30, 30]], np.float32))
    assert image[:3, :3].any() and not image[3:, :].any() and not image[:, 3:].any()


def test_pad_for_boxes_and_names():
    image = np.zeros((100, 100, 3), np.uint8)
    rec = record()
    rec.fbox[0] = [-10, -5, 50, 120]
    padded, moved = pad_for_boxes(image, rec)
    # overhangs: left 10, top 5, right 260 - 100 = 160, bottom 190 - 100 = 90
    assert padded.shape == (100 + 5 + 90, 100 + 10 + 160, 3)
    np.testing.assert_array_equal(moved.fbox[0], [0, 0, 60, 125])
    assert tuple(padded[0, 0]) == (96, 96, 96) and rec.fbox[0, 0] == -10
    assert safe_name("a/b c.jpg") == "a_b_c.jpg" and safe_name("../x") == "_x"


def test_show_command(tmp_path, capsys):
    images = tmp_path / "Images"
    images.mkdir()
    cv2.imwrite(str(images / "one.jpg"), np.full((120, 160, 3), 90, np.uint8))
    g = {
        "tag": "person",
        "fbox": [10, 10, 50, 100],
        "vbox": [10, 10, 50, 60],
        "hbox": [20, 10, 20, 20],
    }
    lines = [
        {"ID": "one", "gtboxes": [g, {"tag": "mask", "fbox": [100, 10, 50, 50]}]},
        {"ID": "two", "gtboxes": []},
    ]
    ann = tmp_path / "a.odgt"
    ann.write_text("\n".join(json.dumps(x) for x in lines))
    rc = main(["show", str(ann), "--out", str(tmp_path / "pics"), "--num", "5"])
    out = capsys.readouterr().out
    assert rc == 0 and "wrote 1 picture(s)" in out and f"skipped two ({ann}:2)" in out
    pic = cv2.imread(str(tmp_path / "pics" / "one.png"))
    assert pic.shape[1:] == (160, 3) and pic.shape[0] > 120  # legend strip on top
    assert (pic == FULL_COLOR).all(2).any() and (pic == IGNORE_COLOR).all(2).any()
    assert main(["show", str(ann), "--out", str(tmp_path / "p"), "--augment"]) == 2
    assert "--augment needs --config" in capsys.readouterr().err


CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"


def test_show_augmented_samples(tmp_path, capsys):
    images = tmp_path / "Images"
    images.mkdir()
    cv2.imwrite(str(images / "one.jpg"), np.full((240, 320, 3), 90, np.uint8))
    g = {"tag": "person", "fbox": [40, 40, 80, 150]}
    (tmp_path / "a.odgt").write_text(json.dumps({"ID": "one", "gtboxes": [g]}) + "\n")
    args = ["show", str(tmp_path / "a.odgt"), "--out", str(tmp_path / "aug"), "--augment"]
    assert main([*args, "--config", str(CONFIG)]) == 0
    pic = cv2.imread(str(tmp_path / "aug" / "one_augmented.png"))
    assert pic is not None and (pic == FULL_COLOR).all(2).sum() > 20


def test_show_augment_reads_the_config_training_set(tmp_path, capsys):
    images = tmp_path / "Images"
    images.mkdir()
    for name in ("one", "two"):
        cv2.imwrite(str(images / f"{name}.jpg"), np.full((240, 320, 3), 90, np.uint8))
    g = {"tag": "person", "fbox": [40, 40, 80, 150], "vbox": [45, 50, 75, 120]}
    lines = [json.dumps({"ID": name, "gtboxes": [g]}) for name in ("one", "two")]
    for split in ("train", "val"):
        (tmp_path / f"annotation_{split}.odgt").write_text("\n".join(lines) + "\n")
    cfg = tmp_path / "strong.yaml"
    cfg.write_text(
        f"base: {CONFIG}\ndata: {{root: {tmp_path}, synth: null}}\n"
        "augment: {mosaic: 1.0, affine: 1.0, affine_scale: [0.9, 1.1]}\n"
    )
    assert main(["show", "--config", str(cfg), "--augment", "--out", str(tmp_path / "p")]) == 0
    assert "wrote 2 picture(s)" in capsys.readouterr().out
    pic = cv2.imread(str(tmp_path / "p" / "one_augmented.png"))
    assert (pic == FULL_COLOR).all(2).sum() > 20 and (pic == VISIBLE_COLOR).all(2).sum() > 20
    assert main(["show", "--out", str(tmp_path / "q")]) == 2  # neither ANN nor --augment
