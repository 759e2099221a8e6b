"""The crowd extras of the RetinaNet head (visible boxes, density, K instances per prior): every
parameter gets a gradient, a few steps on one crowded batch drive every term down, and the
detections carry what the chosen suppression needs."""

from __future__ import annotations

import pytest
import torch

from crowdet.config import load_config
from crowdet.errors import ConfigError
from crowdet.models.build import build_detector
from crowdet.structures import Batch

OPTIONS = {
    "visible": ["model.head.visible=true", "postprocess.nms=visible"],
    "density": ["model.head.density=true", "postprocess.nms=adaptive"],
    "instances": ["model.head.instances=2", "postprocess.nms=set"],
}


def crowd_batch() -> Batch:
    """Two 64 x 96 images of overlapping people, visible boxes the upper parts, one person
    without a visible box."""
    full = torch.tensor(
        [
            [[10.0, 8, 30, 56], [18, 10, 38, 58], [60, 4, 84, 60]],
            [[30.0, 6, 52, 60], [40, 8, 62, 62], [0, 0, 0, 0]],
        ]
    )
    visible = full.clone()
    visible[..., 3] = full[..., 1] + (full[..., 3] - full[..., 1]) * 0.6
    valid = torch.tensor([[True, True, True], [True, True, False]])
    visible_valid = valid.clone()
    visible_valid[0, 2] = False
    torch.manual_seed(0)
    images = (torch.rand(2, 3, 64, 96) * 255).to(torch.uint8)
    for b in range(2):  # bright people on the noise
        for x1, y1, x2, y2 in full[b][valid[b]].long().tolist():
            images[b, :, y1:y2, x1:x2] = 230
    sizes = torch.tensor([[64, 96], [64, 96]])
    return Batch(
        images=images, image_sizes=sizes, boxes=full, valid=valid,
        ignore=torch.zeros(2, 3, dtype=torch.bool), scales=torch.ones(2), orig_sizes=sizes,
        image_ids=["a", "b"], visible=visible, visible_valid=visible_valid,
    )  # fmt: skip


def model_with(option: str):
    torch.manual_seed(0)
    return build_detector(load_config("configs/tiny.yaml", OPTIONS[option]))


@pytest.mark.parametrize("option", list(OPTIONS))
def test_every_parameter_gets_a_finite_gradient(option):
    model = model_with(option)
    losses = model.loss(crowd_batch())
    expected = {"visible": {"visible"}, "density": {"density"}, "instances": set()}[option]
    assert set(losses) == {"cls", "box"} | expected
    sum(losses.values()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert any(float(p.grad.abs().sum()) > 0 for n, p in model.named_parameters() if "head" in n)


@pytest.mark.slow
@pytest.mark.parametrize("option", list(OPTIONS))
def test_a_short_overfit_lowers_every_term(option):
    model = model_with(option)
    batch = crowd_batch()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = {k: float(v.detach()) for k, v in model.loss(batch).items()}
    for _ in range(25):
        opt.zero_grad()
        sum(model.loss(batch).values()).backward()
        opt.step()
    last = {k: float(v.detach()) for k, v in model.loss(batch).items()}
    for k in first:
        assert last[k] < 0.7 * first[k], (k, first[k], last[k])
    dets = model.eval().predict(batch)
    assert len(dets) == 2 and len(dets[0].boxes) > 0
    if option == "visible":
        assert dets[0].visible.shape == dets[0].boxes.shape


def test_a_suppression_the_head_cannot_serve_names_the_key():
    for nms, needs in (("adaptive", "density"), ("visible", "visible"), ("set", "instances")):
        with pytest.raises(ConfigError, match=rf"postprocess\.nms.*{needs}"):
            build_detector(load_config("configs/tiny.yaml", [f"postprocess.nms={nms}"]))
    with pytest.raises(ConfigError, match="model.head.instances"):
        build_detector(
            load_config("configs/tiny.yaml", ["model.head.instances=2", "model.head.density=true"])
        )


def test_two_instances_give_two_outputs_per_prior():
    plain, double = model_with("visible"), model_with("instances")
    (out1, pri1), (out2, pri2) = plain(torch.randn(1, 3, 64, 96)), double(torch.randn(1, 3, 64, 96))
    assert out2.cls_logits.shape[1] == 2 * out1.cls_logits.shape[1] == len(pri2.boxes)
    assert torch.equal(pri2.boxes[0::2], pri1.boxes) and torch.equal(pri2.boxes[1::2], pri1.boxes)
    assert sum(pri2.level_sizes) == len(pri2.boxes)


def test_checkpoint_overrides_choose_the_suppression_or_name_the_key(tmp_path):
    from crowdet.api import Detector
    from crowdet.config import config_to_dict
    from crowdet.engine.checkpoint import save_checkpoint

    cfg = load_config("configs/tiny.yaml", OPTIONS["density"])
    model = build_detector(cfg)
    path = save_checkpoint({"model": model.state_dict(), "config": config_to_dict(cfg)},
                           tmp_path / "last.pt")  # fmt: skip
    det = Detector.from_checkpoint(path, overrides=["postprocess.nms=soft"])
    assert det.cfg.postprocess.nms == "soft" and det.model.head.density
    with pytest.raises(ConfigError, match=r"postprocess\.nms.*visible"):
        Detector.from_checkpoint(path, overrides=["postprocess.nms=visible"])
    with pytest.raises(ConfigError, match="postprocess.nms"):
        Detector.from_checkpoint(path, overrides=["postprocess.nms=bogus"])


def test_eval_box_visible_scores_the_visible_boxes():
    """A full + visible head evaluated with eval.box=visible is scored on its visible boxes, which
    differ from its full boxes; without a visible head the config is refused at build time."""
    from crowdet.engine.model_eval import predict_loader

    cfg = load_config(
        "configs/tiny.yaml",
        [*OPTIONS["visible"], "eval.box=visible", "postprocess.score_threshold=0.0"],
    )
    assert cfg.scores_visible()
    torch.manual_seed(0)
    model = build_detector(cfg).eval()
    batch = crowd_batch()
    (det, _) = model.predict(batch)
    assert det.visible is not None and not torch.equal(det.visible, det.boxes)
    dets, _, _ = predict_loader(model, [batch], "cpu", visible=cfg.scores_visible())
    assert torch.equal(torch.from_numpy(dets["a"][0]), det.visible)
    full, _, _ = predict_loader(model, [batch], "cpu")
    assert torch.equal(torch.from_numpy(full["a"][0]), det.boxes)
    # data.box: visible trains the visible box as the model's own: nothing to switch
    assert not load_config("configs/tiny.yaml", ["data.box=visible"]).scores_visible()
    with pytest.raises(ConfigError, match=r"eval\.box: visible .*model\.head\.visible: true"):
        build_detector(load_config("configs/tiny.yaml", ["eval.box=visible"]))
