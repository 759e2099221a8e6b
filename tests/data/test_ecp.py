"""EuroCity Persons reader: identities, tags, rider policy, layout, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crowdet.data.ecp import occlusion, read_ecp, read_ecp_report
from crowdet.errors import CrowdetError, DataError


def obj(identity, x0, y0, x1, y1, tags=(), children=()):
    return {
        "identity": identity,
        "x0": x0,
        "y0": y0,
        "x1": x1,
        "y1": y1,
        "tags": list(tags),
        "children": list(children),
    }


FRAME = {
    "identity": "frame",
    "imagewidth": 1920,
    "imageheight": 1024,
    "tags": [],
    "children": [
        obj("pedestrian", 100, 200, 140, 300, ["occluded>40", "truncated>10"]),
        obj("rider", 300.5, 210, 350, 320, [], [obj("bicycle", 290, 250, 360, 330)]),
        obj("person-group-far-away", 500, 400, 600, 450),
        obj("pedestrian", 700, 100, 720, 160, ["depiction"]),
        obj("rider+vehicle-group-far-away", 800, 400, 900, 440),
        obj("motorbike", 1000, 500, 1100, 600),
        obj("pedestrian", 1800, 900, 1950, 1100, ["sitting-lying", "occluded>80"]),
    ],
}


def write_frame(root: Path, city: str, name: str, frame) -> Path:
    path = root / "ECP" / "day" / "labels" / "val" / city / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(frame if isinstance(frame, str) else json.dumps(frame, indent=2))
    return path


def test_identities_tags_and_layout(tmp_path):
    path = write_frame(tmp_path, "amsterdam", "amsterdam_00001", FRAME)
    (rec,) = read_ecp(path)
    expected = [
        [100, 200, 140, 300],
        [300.5, 210, 350, 320],
        [500, 400, 600, 450],
        [700, 100, 720, 160],
        [800, 400, 900, 440],
        [1800, 900, 1950, 1100],
    ]
    np.testing.assert_array_equal(rec.fbox, np.array(expected, np.float32))
    assert rec.ignore.tolist() == [False, True, True, True, True, False]
    np.testing.assert_allclose(rec.occ, [0.4, 0, 0, 0, 0, 0.8])
    assert np.isnan(rec.vbox).all() and np.isnan(rec.hbox).all()
    assert (rec.image_id, rec.width, rec.height) == ("amsterdam_00001", 1920, 1024)
    img = tmp_path / "ECP" / "day" / "img" / "val" / "amsterdam" / "amsterdam_00001.png"
    assert rec.image_path == str(img)
    (as_person,) = read_ecp(path, riders="person")
    assert as_person.ignore.tolist() == [False, False, True, True, True, False]


def test_folder_sorted_with_images_dir(tmp_path):
    write_frame(tmp_path, "berlin", "berlin_00002", FRAME)
    write_frame(tmp_path, "berlin", "berlin_00001", {"identity": "frame", "children": []})
    labels = tmp_path / "ECP" / "day" / "labels" / "val"
    recs, report = read_ecp_report(labels, images_dir=tmp_path / "imgs")
    assert [r.image_id for r in recs] == ["berlin_00001", "berlin_00002"]
    assert recs[0].image_path == str(tmp_path / "imgs" / "berlin" / "berlin_00001.png")
    assert len(recs[0]) == 0 and report.count("empty") == 1


def test_occlusion_levels():
    assert occlusion(["occluded>10", "occluded>80", "truncated>40"]) == 0.8
    assert occlusion([]) == 0 and occlusion(["depiction"]) == 0


def test_bad_box_names_file_and_object(tmp_path):
    frame = json.loads(json.dumps(FRAME))
    frame["children"][1]["x1"] = 200  # x1 < x0
    frame["children"][2]["y0"] = "top"
    path = write_frame(tmp_path, "c", "c_1", frame)
    with pytest.raises(DataError, match=r"c_1\.json: children\[1\]: rider box .* zero or negative"):
        read_ecp(path, strict=True)
    (rec,), report = read_ecp_report(path)
    assert report.count("invalid box") == 2 and len(rec) == 4
    assert "children[2]" in str(report.problems[1])


def test_malformed_and_wrong_files(tmp_path):
    bad = write_frame(tmp_path, "c", "c_2", '{"identity": "frame",\n "children": [}\n')
    with pytest.raises(DataError, match=r"c_2\.json:2: malformed JSON"):
        read_ecp(bad, strict=True)
    good = write_frame(tmp_path, "c", "c_3", FRAME)
    recs, report = read_ecp_report(good.parent)
    assert [r.image_id for r in recs] == ["c_3"] and report.count("corrupt") == 1
    other = write_frame(tmp_path, "d", "d_1", {"identity": "something"})
    with pytest.raises(DataError, match="expected an ECP frame"):
        read_ecp(other, strict=True)
    with pytest.raises(CrowdetError, match="riders must be one of"):
        read_ecp(good, riders="maybe")
    with pytest.raises(DataError, match="not found"):
        read_ecp(tmp_path / "nothing")
