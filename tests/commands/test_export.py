"""`crowdet export`: the ONNX graph (network + decoding) run by onnxruntime's CPU provider gives
the PyTorch outputs and, through crowdet's NMS, the detections of `DenseDetector.predict`."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from crowdet.cli import main
from crowdet.config import config_from_dict, config_to_dict, load_config
from crowdet.data.images import read_image
from crowdet.data.preprocess import preprocess
from crowdet.deploy import onnx_export
from crowdet.deploy.graph import DeployGraph
from crowdet.deploy.onnx_engine import OnnxModel
from crowdet.deploy.onnx_export import export_onnx, load_detector, same_detections
from crowdet.errors import CrowdetError
from crowdet.models.build import HEADS, build_detector

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"


def val_images(data):
    return [read_image(p) for p in sorted((data / "Images").glob("synth_val_*.jpg"))[:3]]


@pytest.fixture(scope="module")
def dynamic_onnx(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    report = export_onnx(tiny_run[1] / "last.pt", out, dynamic=True)
    return out, report


def test_export_checks_itself_and_writes_the_config(dynamic_onnx, tiny_run):
    path, report = dynamic_onnx
    assert report.max_diff["scores"] < 1e-3 and report.max_diff["boxes"] < 1e-3
    assert "validation images" in report.check_source
    assert sum(report.detections) > 0  # a check on no detections would prove nothing
    engine = OnnxModel(path)
    assert engine.fixed_size is None and not engine.half
    assert engine.cfg.data.root == str(tiny_run[0])


def test_onnx_detections_equal_pytorch_predict_at_other_sizes(dynamic_onnx, tiny_run):
    """Decoding in the graph + postprocess_decoded == the PyTorch path (coder decode of the
    top candidates + the same NMS), on batches of other sizes than the traced one."""
    engine = OnnxModel(dynamic_onnx[0])
    model, cfg = load_detector(tiny_run[1] / "last.pt")
    model.flip_test, model.test_scales = False, (1.0,)
    images = val_images(tiny_run[0])
    for size, group in ((160, images), (224, images[:1]), (96, images[1:])):
        batch = preprocess(group, size, 32)
        got, ref = engine.predict(batch), model.predict(batch)
        assert sum(len(d.scores) for d in ref) > 0
        for a, b in zip(ref, got):
            assert same_detections(a, b, atol=1e-3), size


def test_fixed_size_graph_pads_and_detector_reads_onnx(tiny_run, tmp_path):
    from crowdet.api import Detector

    out = tmp_path / "fixed.onnx"
    export_onnx(tiny_run[1] / "last.pt", out, imgsz=[160, 192])
    det = Detector.from_checkpoint(out)
    assert det.model.fixed_size == (160, 192) and det.cfg.data.input_size == 160
    image = val_images(tiny_run[0])[0]
    boxes, scores = det(image)
    # the reference: the PyTorch graph on the same padded input, then the same NMS
    model, cfg = load_detector(tiny_run[1] / "last.pt")
    batch = preprocess([image], 160, 32)
    padded = torch.zeros(1, 3, 160, 192)
    padded[..., : batch.images.shape[2], : batch.images.shape[3]] = batch.images
    with torch.no_grad():
        scores_t, boxes_t = DeployGraph(model)(padded, batch.image_sizes)
    from crowdet.deploy.onnx_engine import postprocess_kwargs
    from crowdet.postprocess.decode import postprocess_decoded

    ref = postprocess_decoded(scores_t, boxes_t, batch.scales, **postprocess_kwargs(cfg))[0]
    assert len(ref.scores) > 0 and len(scores) == len(ref.scores)
    assert torch.allclose(boxes, ref.boxes, atol=1e-2)
    assert torch.allclose(scores, ref.scores, atol=1e-4)
    assert boxes[:, 2].max() <= image.shape[1] + 1e-3  # original-image pixels


def test_a_mismatch_fails_loudly_and_writes_nothing(tiny_run, tmp_path, monkeypatch):
    run = OnnxModel.run

    def shifted(self, images, sizes):
        scores, boxes = run(self, images, sizes)
        return scores, boxes + 0.01  # a runtime off by a hundredth of a pixel

    monkeypatch.setattr(OnnxModel, "run", shifted)
    out = tmp_path / "bad.onnx"
    with pytest.raises(CrowdetError, match="export check failed: boxes differs by 0.01"):
        export_onnx(tiny_run[1] / "last.pt", out, dynamic=True)
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize("head", sorted(HEADS))
def test_every_head_exports(head, tmp_path):
    """Each head of the table through the graph and onnxruntime (random weights)."""
    data = config_to_dict(load_config(TINY, ["data.root=unused"]))
    data["model"]["head"] = {"name": head}  # the head's own defaults, not tiny.yaml's retina keys
    cfg = config_from_dict(data)
    model = build_detector(cfg).eval()
    graph = DeployGraph(model).eval()
    onnx_export._trace(graph, tmp_path / "m.onnx", (128, 128), dynamic=True)
    onnx_export._write_metadata(tmp_path / "m.onnx", cfg, None, False)
    engine = OnnxModel(tmp_path / "m.onnx")
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 255, (2, 3, 96, 160), dtype=np.uint8))
    sizes = torch.tensor([[96, 160], [80, 120]])
    with torch.no_grad():
        ref = graph(images.float(), sizes)
    got = engine.run(images, sizes)
    for a, b in zip(ref, got):
        assert a.shape == b.shape
        assert float((a - torch.from_numpy(b)).abs().max()) < 1e-3


def test_export_cli_and_detect_with_the_onnx(dynamic_onnx, tiny_run, tmp_path, capsys):
    out = tmp_path / "det"
    image = tiny_run[0] / "Images" / "synth_val_000001.jpg"
    code = main(["detect", "--checkpoint", str(dynamic_onnx[0]), str(image), "--out", str(out)])
    assert code == 0
    lines = (out / "detections.odgt").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["ID"] == "synth_val_000001"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p.write_bytes(b"\x00garbage"), "not a readable checkpoint"),
        (
            lambda p: torch.save({"model": {"x": torch.zeros(1)}, "config": {}}, p),
            "the weights do not fit the model",
        ),  # fmt: skip
    ],
)
def test_bad_checkpoints_are_one_line(make, expected, tmp_path, capsys):
    ckpt = tmp_path / "bad.pt"
    make(ckpt)
    code = main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"crowdet export: error: {ckpt}") and expected in err


def test_a_corrupt_onnx_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((32, 32, 3), np.uint8))
    code = main(["detect", "--checkpoint", str(bad), str(tmp_path / "a.jpg")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert f"{bad}: not a loadable ONNX model" in err


def test_bad_imgsz_names_the_option(tiny_run, tmp_path, capsys):
    code = main(["export", "--checkpoint", str(tiny_run[1] / "last.pt"),
                 "--out", str(tmp_path / "m.onnx"), "--imgsz", "100"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--imgsz 100" in err and "data.size_divisor=32" in err


def test_an_out_folder_is_one_line(tiny_run, tmp_path, capsys):
    code = main(["export", "--checkpoint", str(tiny_run[1] / "last.pt"), "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert (
        code == 2
        and err
        == f"crowdet export: error: --out {tmp_path}: is a folder; name the .onnx file to write"
    )


def test_half_export_is_checked_by_matched_detections(tiny_run, tmp_path):
    out = tmp_path / "half.onnx"
    report = export_onnx(tiny_run[1] / "last.pt", out, dynamic=True, half=True)
    assert OnnxModel(out).half and report.half
    assert report.max_diff["scores"] < onnx_export.ATOL_HALF and sum(report.detections) > 0


def test_matched_detections_needs_an_overlapping_partner():
    from crowdet.deploy.onnx_export import matched_detections
    from crowdet.structures import Detections

    def dets(boxes, scores):
        boxes, scores = torch.tensor(boxes, dtype=torch.float32), torch.tensor(scores)
        return Detections(boxes, scores, torch.zeros(len(scores), dtype=torch.int64))

    a = dets([[0, 0, 10, 20], [50, 50, 60, 70]], [0.9, 0.05])
    shifted = dets([[0.2, 0, 10.2, 20]], [0.88])  # IoU 0.96 with the first; the weak one absent
    moved = dets([[2, 0, 12, 20]], [0.9])  # IoU 8/12 = 0.67
    assert matched_detections(a, shifted) and not matched_detections(a, moved)
