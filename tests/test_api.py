"""The Python API and `crowdet detect` preprocess through `crowdet.data.preprocess`, so detecting
an image gives the boxes evaluation gives for it."""

import cv2
import numpy as np
import torch

from crowdet import Detector
from crowdet.config import load_config
from crowdet.data.preprocess import preprocess
from crowdet.data.records import ImageRecord
from crowdet.engine.data import build_dataset, eval_loader
from crowdet.engine.model_eval import predict_loader
from crowdet.models.build import build_detector

TTA = ["postprocess.flip_test=true", "postprocess.test_scales=[1.0, 1.4]"]


def images_and_records(tmp_path):
    rng = np.random.default_rng(0)
    records = []
    for i, (h, w) in enumerate([(90, 120), (200, 70)]):
        path = tmp_path / f"{i}.png"
        cv2.imwrite(str(path), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        records.append(ImageRecord(image_id=str(i), image_path=str(path)))
    return records


def test_preprocess_gives_the_evaluation_batch(tmp_path):
    cfg = load_config("configs/tiny.yaml", [f"data.root={tmp_path}", "eval.batch_size=2"])
    records = images_and_records(tmp_path)
    (want,) = list(eval_loader(cfg, build_dataset(cfg, records, train=False)))
    got = preprocess([cv2.imread(r.image_path) for r in records], 160, 32)
    for field in ("images", "image_sizes", "scales", "orig_sizes"):
        assert torch.equal(getattr(got, field), getattr(want, field)), field
    assert got.images.dtype == torch.uint8 and got.images.shape == (2, 3, 160, 160)
    assert torch.equal(got.scales, torch.tensor([160 / 120, 160 / 200]))  # float32


def test_detect_and_evaluate_give_the_same_boxes(tmp_path):
    torch.manual_seed(0)
    overrides = [f"data.root={tmp_path}", "eval.batch_size=1", "postprocess.score_threshold=0.005"]
    cfg = load_config("configs/tiny.yaml", [*overrides, *TTA])
    model = build_detector(cfg).eval()
    records = images_and_records(tmp_path)
    loader = eval_loader(cfg, build_dataset(cfg, records, train=False))
    dets, _, _ = predict_loader(model, loader, torch.device("cpu"))
    detector = Detector(model, cfg)
    for rec in records:
        boxes, scores = detector(rec.image_path)
        assert len(boxes) > 0
        assert np.array_equal(boxes.numpy(), dets[rec.image_id][0])
        assert np.array_equal(scores.numpy(), dets[rec.image_id][1])


def test_compiled_inference_gives_the_eager_outputs_and_scores(tmp_path):
    torch.manual_seed(0)
    overrides = [f"data.root={tmp_path}", "postprocess.score_threshold=0.005"]
    cfg = load_config("configs/tiny.yaml", overrides)
    eager = build_detector(cfg).eval()
    compiled = build_detector(cfg).eval()
    compiled.load_state_dict(eager.state_dict())
    compiled.compile_for_inference()
    assert all(
        m._compiled_call_impl is not None for m in (compiled.backbone, compiled.neck, compiled.head)
    )
    records = images_and_records(tmp_path)
    batch = preprocess([cv2.imread(r.image_path) for r in records], 160, 32)
    with torch.no_grad():
        x = eager.input_norm(batch.images, batch.image_sizes)
        want, got = eager(x)[0], compiled(x)[0]
        for field in ("cls_logits", "box_regression"):
            a, b = getattr(want, field), getattr(got, field)
            assert torch.allclose(a, b, atol=1e-4), (field, (a - b).abs().max())
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # compiled in place
    for w, g in zip(eager.predict(batch), compiled.predict(batch), strict=True):
        assert len(g.boxes) == len(w.boxes) > 0
        # a random model's scores are all about 0.01: near-ties that rounding may order either
        # way before NMS, so the kept boxes are compared as scores (the outputs are, above)
        assert torch.allclose(g.scores.sort().values, w.scores.sort().values, atol=1e-5)


def test_compile_refuses_an_onnx_model(tmp_path):
    import pytest

    from crowdet.errors import CrowdetError

    with pytest.raises(CrowdetError, match="compile applies to PyTorch checkpoints"):
        Detector.from_checkpoint(tmp_path / "model.onnx", compile=True)
