"""The assembled detector: the channels-last layout changes memory order only, not results."""

from __future__ import annotations

import torch

from crowdet.config import load_config
from crowdet.models.build import build_detector
from crowdet.postprocess.decode import PassOutput
from crowdet.postprocess.tta import mirror_images
from crowdet.structures import Batch


def test_channels_last_gives_the_same_outputs_and_gradients():
    torch.manual_seed(0)
    plain = build_detector(load_config("configs/tiny.yaml"))
    nhwc = build_detector(load_config("configs/tiny.yaml", ["model.channels_last=true"]))
    nhwc.load_state_dict(plain.state_dict())
    conv = next(
        m for m in nhwc.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] > 1
    )
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()
    images = torch.randn(2, 3, 64, 96)
    (out_plain, priors_plain), (out_nhwc, priors_nhwc) = plain(images), nhwc(images)
    torch.testing.assert_close(out_plain.cls_logits, out_nhwc.cls_logits, rtol=1e-4, atol=1e-4)
    a, b = out_plain.box_regression, out_nhwc.box_regression
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert torch.equal(priors_plain.boxes, priors_nhwc.boxes)
    for out in (out_plain, out_nhwc):
        (out.cls_logits.square().sum() + out.box_regression.square().sum()).backward()
    for (name, p), q in zip(plain.named_parameters(), nhwc.parameters()):
        scale = float(p.grad.abs().max())  # sums in another order: equal up to float rounding
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5 * scale, msg=name)


def test_test_time_passes_merge_before_nms():
    torch.manual_seed(0)
    overrides = ["postprocess.flip_test=true", "postprocess.score_threshold=0.001"]
    overrides += ["postprocess.test_scales=[1.0, 1.5]", "postprocess.max_dets=5000"]
    model = build_detector(load_config("configs/tiny.yaml", overrides)).eval()
    images = torch.randn(2, 3, 64, 96)
    sizes = torch.tensor([[64, 96], [50, 70]])
    batch = Batch(
        images=images, image_sizes=sizes, boxes=torch.zeros(2, 0, 4),
        valid=torch.zeros(2, 0, dtype=torch.bool), ignore=torch.zeros(2, 0, dtype=torch.bool),
        scales=torch.ones(2), orig_sizes=sizes, image_ids=["a", "b"],
    )  # fmt: skip
    images = model.input_norm(images, sizes)  # predict normalises, then runs the test-time ops
    big = torch.nn.functional.interpolate(images, size=(96, 144), mode="bilinear")
    big = torch.nn.functional.pad(big, (0, 16))  # to a multiple of 32: 160
    big_sizes = torch.tensor([[96, 144], [75, 105]])
    passes = []
    with torch.no_grad():
        for x, s, resize in ((images, sizes, (1.0, 1.0)), (big, big_sizes, (1.5, 1.5))):
            for mirrored in (False, True):
                out, priors = model(mirror_images(x, s) if mirrored else x)
                passes.append(PassOutput(out, priors.boxes, s, resize, mirrored))
    run = model.postprocess_fn  # the config's post-processing
    want = run(passes, torch.ones(2), model.head.coder)
    plain = run(passes[:1], torch.ones(2), model.head.coder)
    got = model.predict(batch)
    for g, w in zip(got, want):
        torch.testing.assert_close(g.boxes, w.boxes)
        torch.testing.assert_close(g.scores, w.scores)
    assert all(len(p.scores) > 0 for p in plain)
    assert any(len(g.scores) != len(p.scores) for g, p in zip(got, plain))


def test_api_without_tta_runs_the_plain_pass(tmp_path):
    from crowdet import Detector
    from crowdet.config import config_to_dict

    torch.manual_seed(0)
    tta = ["postprocess.flip_test=true", "postprocess.test_scales=[1.0, 1.5]"]
    cfg = load_config("configs/tiny.yaml", [*tta, "postprocess.score_threshold=0.001"])
    model = build_detector(cfg)
    torch.save({"config": config_to_dict(cfg), "model": model.state_dict()}, tmp_path / "m.pt")
    full = Detector.from_checkpoint(tmp_path / "m.pt")
    fast = Detector.from_checkpoint(tmp_path / "m.pt", tta=False)
    assert full.model.flip_test and full.model.test_scales == (1.0, 1.5)
    assert not fast.model.flip_test and fast.model.test_scales == (1.0,)
    plain_cfg = load_config("configs/tiny.yaml", ["postprocess.score_threshold=0.001"])
    plain = Detector(build_detector(plain_cfg), plain_cfg)
    plain.model.load_state_dict(model.state_dict())
    image = torch.randint(0, 255, (60, 80, 3), dtype=torch.uint8).numpy()
    (b_fast, s_fast), (b_plain, s_plain) = fast(image), plain(image)
    torch.testing.assert_close(b_fast, b_plain)
    torch.testing.assert_close(s_fast, s_plain)
    b_full = full(image)[0]  # the four passes find other boxes
    assert b_full.shape != b_fast.shape or not torch.equal(b_full, b_fast)
