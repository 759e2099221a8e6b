"""COCO json reader/writer: hand-made fixture, pycocotools as an oracle, bad input, round trips."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crowdet.data.coco import coco_image_ids, read_coco, read_coco_report, write_coco
from crowdet.data.odgt import read_odgt, write_odgt
from crowdet.data.records import ImageRecord
from crowdet.errors import DataError

FIELDS = ("fbox", "vbox", "hbox", "ignore", "head_ignore", "box_ids", "occ")


def assert_same(a: list[ImageRecord], b: list[ImageRecord]):
    assert [r.image_id for r in a] == [r.image_id for r in b]
    for x, y in zip(a, b, strict=True):
        for name in FIELDS:
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name), err_msg=name)
        assert (x.width, x.height) == (y.width, y.height)


def fixture() -> dict:
    return {
        "images": [
            {"id": 10, "file_name": "a.jpg", "width": 640, "height": 480},
            {"id": 11, "file_name": "sub/b.png", "width": 100, "height": 50},
            {"id": 12, "file_name": "c.jpg"},
        ],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 1, "bbox": [10, 20, 30, 40], "iscrowd": 0},
            {
                "id": 2,
                "image_id": 10,
                "category_id": 1,
                "bbox": [5.5, 6, 7, 8],
                "vis_bbox": [6, 7, 3, 4],
                "head_bbox": [6, 6, 2, 2],
                "iscrowd": 0,
            },
            {"id": 3, "image_id": 10, "category_id": 1, "bbox": [0, 0, 50, 50], "iscrowd": 1},
            {"id": 4, "image_id": 11, "category_id": 1, "bbox": [1, 1, 2, 2], "ignore": 1},
            {"id": 5, "image_id": 11, "category_id": 3, "bbox": [1, 1, 9, 9]},  # a car
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
    }


def write_json(path, data):
    path.write_text(json.dumps(data))
    return path


def test_read_fixture(tmp_path):
    path = write_json(tmp_path / "ann.json", fixture())
    a, b, c = read_coco(path, images_dir=tmp_path / "imgs")
    assert (a.image_id, b.image_id, c.image_id) == ("a", "sub/b", "c")
    assert b.image_path == str(tmp_path / "imgs" / "sub" / "b.png")
    assert (a.width, a.height, c.width, c.height) == (640, 480, 0, 0)
    np.testing.assert_array_equal(a.fbox, [[10, 20, 40, 60], [5.5, 6, 12.5, 14], [0, 0, 50, 50]])
    np.testing.assert_array_equal(a.vbox[1], [6, 7, 6 + 3, 7 + 4])
    np.testing.assert_array_equal(a.hbox[1], [6, 6, 8, 8])
    assert np.isnan(a.vbox[[0, 2]]).all() and np.isnan(a.hbox[[0, 2]]).all()
    assert a.ignore.tolist() == [False, False, True] and a.box_ids.tolist() == [1, 2, 3]
    assert b.ignore.tolist() == [True] and len(c) == 0  # the car is not read
    assert coco_image_ids(path) == {10: "a", 11: "sub/b", 12: "c"}


def test_pedestrian_category_and_single_unnamed_category(tmp_path):
    data = fixture()
    data["categories"] = [{"id": 1, "name": "pedestrian"}, {"id": 3, "name": "car"}]
    assert [len(r) for r in read_coco(write_json(tmp_path / "p.json", data))] == [3, 1, 0]
    data["categories"] = [{"id": 1, "name": "thing"}]
    data["annotations"] = data["annotations"][:4]
    assert [len(r) for r in read_coco(write_json(tmp_path / "one.json", data))] == [3, 1, 0]
    data["categories"] = [{"id": 1, "name": "thing"}, {"id": 3, "name": "car"}]
    with pytest.raises(DataError, match="no 'person' or 'pedestrian' category"):
        read_coco(write_json(tmp_path / "two.json", data))


def sample_records() -> list[ImageRecord]:
    nan = [math.nan] * 4
    return [
        ImageRecord(
            "273271,1a0d6000b9e1f5b7",
            "x/273271,1a0d6000b9e1f5b7.jpg",
            width=800,
            height=600,
            fbox=np.array([[10, 20, 40, 60], [-5, -5, 900, 700], [1, 2, 3, 4]], np.float32),
            vbox=np.array([[12, 22, 30, 50], nan, [1, 2, 3, 4]], np.float32),
            hbox=np.array([[15, 20, 25, 30], [0, 0, 10, 10], nan], np.float32),
            ignore=np.array([False, False, True]),
            head_ignore=np.array([False, True, False]),
            box_ids=np.array([0, 1, -1]),
            occ=np.array([0, 1, np.nan], np.float32),
        ),
        ImageRecord("empty", "y/empty.png"),
    ]


@pytest.mark.parametrize("box", ["full", "visible", "head"])
def test_pycocotools_loads_written_file(tmp_path, box):
    from pycocotools.coco import COCO

    path = tmp_path / "out.json"
    recs = sample_records()
    write_coco(recs, path, box=box)
    coco = COCO(str(path))
    assert sorted(coco.getImgIds()) == [1, 2] and coco.imgs[2]["file_name"] == "empty.png"
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[1]))
    assert len(anns) == 3 and len({a["id"] for a in anns}) == 3
    # row 1 has no visible box and an ignored head; row 2 is an ignore region
    expected = {"full": [0, 0, 1], "visible": [0, 1, 1], "head": [0, 1, 1]}[box]
    assert [a["iscrowd"] for a in anns] == expected
    assert [a["ignore"] for a in anns] == [0, 0, 1]
    kind = {"full": recs[0].fbox, "visible": recs[0].vbox, "head": recs[0].hbox}[box][0]
    x1, y1, x2, y2 = kind.tolist()
    assert anns[0]["bbox"] == [x1, y1, x2 - x1, y2 - y1]
    assert anns[0]["area"] == (x2 - x1) * (y2 - y1)
    assert_same(recs, read_coco(path))


def test_written_fields(tmp_path):
    recs = sample_records()
    write_coco(recs, tmp_path / "v.json", box="visible")
    data = json.loads((tmp_path / "v.json").read_text())
    a0, a1, a2 = data["annotations"]
    assert data["info"]["crowdet_bbox"] == "visible"
    assert a0["bbox"] == [12, 22, 18, 28] and a0["full_bbox"] == [10, 20, 30, 40]
    assert a0["head_bbox"] == [15, 20, 10, 10] and a0["box_id"] == 0 and a0["occ"] == 0
    assert a1["bbox"] == [-5, -5, 905, 705] and "vis_bbox" not in a1 and a1["head_ignore"] == 1
    assert a2["box_id"] == -1 and "occ" not in a2 and a2["iscrowd"] == 1
    assert [a["id"] for a in data["annotations"]] == [1, 2, 3]
    assert all(type(v) is int for v in a0["bbox"])


# ---------------------------------------------------------------- bad input
def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "images": [],\n  "annotations": [\n    {"id": 1,,}\n  ]\n}\n')
    with pytest.raises(DataError, match=r"bad\.json:4: malformed JSON") as info:
        read_coco(path)
    assert info.value.line == 4


@pytest.mark.parametrize(
    "change, kind, expected",
    [
        ({"bbox": [1, 2, 3]}, "invalid box", "bbox must be 4 numbers"),
        ({"bbox": [1, 2, 0, 3]}, "invalid box", "zero or negative size"),
        ({"bbox": "1 2 3 4"}, "invalid box", "bbox must be 4 numbers"),
        ({"bbox": None}, "invalid box", "bbox must be 4 numbers"),
        ({"image_id": 99}, "corrupt", "image_id 99 is not in 'images'"),
        ({"iscrowd": "no"}, "corrupt", "'iscrowd' must be a number"),
        ({"id": 1.5}, "invalid box", "box id must be an integer"),
    ],
)
def test_bad_annotation(tmp_path, change, kind, expected):
    data = fixture()
    data["annotations"][1].update(change)
    path = write_json(tmp_path / "ann.json", data)
    with pytest.raises(DataError) as info:
        read_coco(path, strict=True)
    assert info.value.kind == kind and expected in str(info.value)
    assert str(info.value).startswith(f"{path}: annotations[1] (id ")
    recs, report = read_coco_report(path)
    assert report.count(kind) == 1 and [len(r) for r in recs] == [2, 1, 0]


def test_duplicate_images_and_missing_lists(tmp_path):
    data = fixture()
    data["images"].append({"id": 10, "file_name": "z.jpg"})
    path = write_json(tmp_path / "dup.json", data)
    with pytest.raises(DataError, match=r"images\[3\]: duplicate image id 10"):
        read_coco(path, strict=True)
    assert read_coco_report(path)[1].count("duplicate") == 1
    with pytest.raises(DataError, match="missing or invalid 'annotations'"):
        read_coco(write_json(tmp_path / "x.json", {"images": []}))


# ---------------------------------------------------------------- round trips
def boxes(draw, n: int, allow_missing: bool) -> np.ndarray:
    out = np.full((n, 4), np.nan, np.float32)
    for i in range(n):
        if allow_missing and draw(st.booleans()):
            continue
        x = draw(st.floats(-200, 3000, width=32))
        y = draw(st.floats(-200, 3000, width=32))
        w = draw(st.floats(1, 1500, width=32))
        h = draw(st.floats(1, 1500, width=32))
        out[i] = [x, y, np.float32(x) + np.float32(w), np.float32(y) + np.float32(h)]
    return out


@st.composite
def records(draw):
    out = []
    ids = draw(st.lists(st.text("abcXYZ019,_-", min_size=1, max_size=12), unique=True, max_size=4))
    for image_id in ids:
        n = draw(st.integers(0, 6))
        size = draw(st.sampled_from([(0, 0), (1920, 1080), (640, 480)]))
        occ = [draw(st.one_of(st.just(math.nan), st.floats(0, 1, width=32))) for _ in range(n)]
        box_ids = draw(st.lists(st.integers(-1, 10**6), min_size=n, max_size=n))
        out.append(
            ImageRecord(
                image_id,
                width=size[0],
                height=size[1],
                fbox=boxes(draw, n, False),
                vbox=boxes(draw, n, True),
                hbox=boxes(draw, n, True),
                ignore=np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool),
                head_ignore=np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool),
                box_ids=np.array(box_ids, np.int64),
                occ=np.array(occ, np.float32),
            )
        )
    return out


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(recs=records(), box=st.sampled_from(["full", "visible", "head"]))
def test_odgt_coco_odgt_round_trip(tmp_path, recs, box):
    write_odgt(recs, tmp_path / "a.odgt")
    from_odgt = read_odgt(tmp_path / "a.odgt", strict=True)
    assert_same(recs, from_odgt)
    write_coco(from_odgt, tmp_path / "b.json", box=box)
    from_coco = read_coco(tmp_path / "b.json", strict=True)
    assert_same(recs, from_coco)
    write_odgt(from_coco, tmp_path / "c.odgt")
    assert_same(recs, read_odgt(tmp_path / "c.odgt", strict=True))


def test_vectorised_path_matches_checked_path(tmp_path):
    rng = np.random.default_rng(3)
    n_img, n_ann = 7, 400
    images = [{"id": 100 + i, "file_name": f"im{i}.jpg"} for i in range(n_img)]
    owner = rng.integers(0, n_img - 1, n_ann)  # the last image gets no annotation
    xywh = np.concatenate([rng.integers(-20, 500, (n_ann, 2)), rng.integers(1, 200, (n_ann, 2))], 1)
    anns = [
        {
            "id": 1000 + k,
            "image_id": 100 + int(owner[k]),
            "category_id": 1,
            "bbox": xywh[k].tolist(),
            "vis_bbox": (xywh[k] // 2 + [0, 0, 1, 1]).tolist(),
            "iscrowd": int(k % 17 == 0),
            "ignore": int(k % 23 == 0),
        }
        for k in range(n_ann)
    ]
    clean = write_json(tmp_path / "clean.json", {"images": images, "annotations": anns})
    bad = {"id": 1, "image_id": 100, "category_id": 1, "bbox": [0, 0, -1, 5]}
    dirty = write_json(tmp_path / "dirty.json", {"images": images, "annotations": [*anns, bad]})
    fast, checked = read_coco(clean), read_coco(dirty)
    assert_same(fast, checked)
    for i, rec in enumerate(fast):  # rows grouped by image, file order kept within an image
        rows = np.flatnonzero(owner == i)
        assert rec.box_ids.tolist() == (1000 + rows).tolist()
        b = xywh[rows]
        np.testing.assert_array_equal(rec.fbox, np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], 1))
        assert rec.ignore.tolist() == [(k % 17 == 0) or (k % 23 == 0) for k in rows]
    assert len(fast[-1]) == 0 and fast[-1].fbox.shape == (0, 4)
