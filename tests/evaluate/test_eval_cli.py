"""`crowdet eval-dets` end to end, `format_table` and `write_results`."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from eval_scenes import random_set
from reference_crowdhuman import reference_metrics

from crowdet.cli import main
from crowdet.data.coco import coco_image_ids, write_coco
from crowdet.data.odgt import write_odgt
from crowdet.evaluate import evaluate, format_table, write_results
from crowdet.evaluate.detfile import write_crowdhuman_dets


@pytest.fixture
def files(tmp_path):
    gt, dets = random_set(12, seed=2, people=10, dets=30)
    sizes = {r.image_id: (r.width, r.height) for r in gt}
    for r in gt:
        r.width = r.height = 0  # the sizes come from the detection file
    write_odgt(gt, tmp_path / "gt.odgt")
    write_crowdhuman_dets(tmp_path / "dt.json", dets, sizes)
    return tmp_path, gt, dets, sizes


def test_eval_dets_prints_the_table_and_writes_metrics_and_plots(files, capsys):
    tmp, gt, dets, sizes = files
    out = tmp / "out"
    assert (
        main(
            [
                "eval-dets",
                "--gt",
                str(tmp / "gt.odgt"),
                "--dt",
                str(tmp / "dt.json"),
                "--out",
                str(out),
                "--caltech",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "CrowdHuman AP" in text and "MR^-2 (CrowdHuman definition)" in text
    assert "COCO AP@[.5:.95]" in text and "Caltech/CityPersons MR^-2, Reasonable" in text
    metrics = json.loads((out / "metrics.json").read_text())
    ref = reference_metrics(gt, dets, sizes=sizes)
    assert metrics["AP"] == pytest.approx(ref["AP"], abs=1e-6)
    assert metrics["MR"] == pytest.approx(ref["MR"], abs=1e-6)
    assert metrics["JI"] == pytest.approx(ref["JI"], abs=1e-6)
    assert metrics["num_images"] == 12 and metrics["box"] == "full"
    assert metrics["num_dets"] == sum(len(s) for _, s in dets.values())
    assert set(metrics["coco"]) == {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR"}
    assert set(metrics["caltech"]) == {"Reasonable", "Small", "Heavy", "All"}
    for name in ("pr_curve", "mr_fppi", "ji_threshold", "mr_by_occlusion", "mr_by_height"):
        image = cv2.imread(str(out / f"{name}.png"))
        assert image is not None and image.shape[0] > 200 and image.std() > 10, name


def test_eval_dets_with_coco_gt_and_coco_results(files, capsys):
    tmp, gt, dets, sizes = files
    for r in gt:
        r.width, r.height = sizes[r.image_id]
    write_coco(gt, tmp / "gt.json")
    ids = {v: k for k, v in coco_image_ids(tmp / "gt.json").items()}
    results = [
        {"image_id": ids[k], "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": s}
        for k, (b, sc) in dets.items()
        for (x1, y1, x2, y2), s in zip(b.tolist(), sc.tolist())
    ]
    (tmp / "res.json").write_text(json.dumps(results))
    code = main(
        [
            "eval-dets",
            "--gt",
            str(tmp / "gt.json"),
            "--dt",
            str(tmp / "res.json"),
            "--out",
            str(tmp / "o2"),
            "--no-coco",
        ]
    )
    assert code == 0
    metrics = json.loads((tmp / "o2" / "metrics.json").read_text())
    expected = evaluate(gt, dets, coco=False)
    assert metrics["AP"] == pytest.approx(expected.AP, abs=1e-9)
    assert metrics["JI"] == pytest.approx(expected.JI, abs=1e-9) and metrics["coco"] == {}


def test_eval_dets_errors_are_one_line_with_file_and_line(files, capsys):
    tmp, *_ = files
    lines = (tmp / "dt.json").read_text().splitlines()
    lines[3] = lines[3].replace('"img00003"', '"stranger"')
    (tmp / "bad_id.json").write_text("\n".join(lines) + "\n")
    code = main(["eval-dets", "--gt", str(tmp / "gt.odgt"), "--dt", str(tmp / "bad_id.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert (
        f"{tmp / 'bad_id.json'}:4" in err[0] and "'stranger' is not in the ground truth" in err[0]
    )
    lines[3] = lines[3][:-5]
    (tmp / "bad_line.json").write_text("\n".join(lines) + "\n")
    code = main(["eval-dets", "--gt", str(tmp / "gt.odgt"), "--dt", str(tmp / "bad_line.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"{tmp / 'bad_line.json'}:4: malformed" in err[0]


def test_unknown_sizes_name_the_image(files, capsys):
    tmp, gt, dets, _ = files
    write_crowdhuman_dets(tmp / "nosize.json", dets)  # no width/height, no images on disk
    code = main(["eval-dets", "--gt", str(tmp / "gt.odgt"), "--dt", str(tmp / "nosize.json")])
    err = capsys.readouterr().err
    assert code == 2 and "image 'img00000': size unknown" in err


def test_format_table_names_each_metric_and_write_results_keeps_the_values(tmp_path):
    gt, dets = random_set(6, seed=9)
    r = evaluate(gt, dets, caltech=True)
    table = format_table(r)
    for label in (
        "CrowdHuman AP",
        "MR^-2 (CrowdHuman definition)",
        "JI (Jaccard index)",
        "COCO AP@[.5:.95] (101-point)",
        "COCO AR@1000",
        "Caltech/CityPersons MR^-2",
    ):
        assert label in table
    assert f"{100 * r.AP:7.2f}" in table and f"{100 * r.MR:7.2f}" in table
    paths = write_results(r, tmp_path / "o", plots=False)
    assert list(paths) == ["metrics"]
    data = json.loads(paths["metrics"].read_text())
    assert data["AP"] == r.AP and data["coco"]["AP"] == r.coco["AP"]
    assert data["ji_per_threshold"]["0.5"] == r.ji_curve[5]
    assert data["mr_points"]["0.01"] == r.mr_points[0]
    occ = data["mr_by_occlusion"]
    assert sum(v["num_gt"] for v in occ.values()) == r.num_gt
    assert np.isfinite([v["MR"] for v in occ.values()]).all()


def test_eval_dets_warns_about_missing_lines_and_strict_refuses(files, capsys, caplog):
    tmp, gt, _, sizes = files
    for r in gt:
        r.width, r.height = sizes[r.image_id]
    write_odgt(gt, tmp / "gt_sized.odgt")
    lines = (tmp / "dt.json").read_text().splitlines()
    (tmp / "cut.json").write_text("\n".join(lines[:3]) + "\n")
    gt_path, dt_path = str(tmp / "gt_sized.odgt"), str(tmp / "cut.json")
    args = ["eval-dets", "--gt", gt_path, "--dt", dt_path, "--no-coco"]
    with caplog.at_level("WARNING"):
        assert main(args) == 0
    assert "ground-truth images have no detection line" in caplog.text
    assert main([*args, "--strict"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp / 'cut.json'}" in err and "no detection line" in err and "--strict" in err


def test_a_gt_problem_is_reported_before_a_detection_problem(files, capsys):
    tmp, *_ = files
    gt_lines = (tmp / "gt.odgt").read_text().splitlines()
    gt_lines[1] = gt_lines[1][:-3]  # a truncated GT line (read in a child process)
    (tmp / "bad_gt.odgt").write_text("\n".join(gt_lines) + "\n")
    dt_lines = (tmp / "dt.json").read_text().splitlines()
    dt_lines[3] = dt_lines[3][:-5]
    (tmp / "bad_dt.json").write_text("\n".join(dt_lines) + "\n")
    for dt in ("dt.json", "bad_dt.json"):
        code = main(["eval-dets", "--gt", str(tmp / "bad_gt.odgt"), "--dt", str(tmp / dt)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and f"{tmp / 'bad_gt.odgt'}:2: malformed" in err[0]
