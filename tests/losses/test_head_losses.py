"""The FCOS, YOLOv3 and YOLOX losses on hand-made cases with values worked out by hand (a logit
of 0 gives a binary cross-entropy of log 2 whatever its target), ignored priors adding nothing,
and the loss of each head picked by the head's name."""

from __future__ import annotations

import math

import pytest
import torch

from crowdet.assign.codes import BACKGROUND, IGNORE
from crowdet.assign.fcos import FCOSAssigner
from crowdet.assign.yolov3 import YOLOv3Assigner
from crowdet.config import load_config
from crowdet.errors import ConfigError
from crowdet.losses.dense import DenseLoss
from crowdet.losses.fcos import FCOSLoss, centerness
from crowdet.losses.yolov3 import YOLOv3Loss
from crowdet.losses.yolox import YOLOXLoss
from crowdet.models.anchors import SizedAnchorGenerator, point_priors
from crowdet.models.build import build_detector, build_loss
from crowdet.models.coders import DeltaCoder, PointDistanceCoder, YoloCoder
from crowdet.structures import AssignResult, Batch, HeadOutput

LOG2 = math.log(2)


def batch_of(boxes, ignore=None) -> Batch:
    boxes = torch.tensor([boxes], dtype=torch.float32)
    valid = torch.ones(boxes.shape[:2], dtype=torch.bool)
    ignore = torch.tensor([ignore or [False] * boxes.shape[1]])
    size = torch.tensor([[32, 32]])
    return Batch(torch.zeros(1, 3, 32, 32), size, boxes, valid, ignore, torch.ones(1), size)


def zeros(num_priors: int, requires_grad=True, **extra) -> HeadOutput:
    def z(n):
        return torch.zeros(1, num_priors, n, requires_grad=requires_grad)

    return HeadOutput(z(1), z(4), **{k: z(1) for k in extra})


def test_centerness_by_hand():
    sides = torch.tensor([[10.0, 10, 10, 10], [6, 10, 14, 10], [6, 2, 14, 8], [-1, 5, 5, 5]])
    want = [1.0, math.sqrt(6 / 14), math.sqrt(6 / 14 * 2 / 8), 0.0]
    torch.testing.assert_close(centerness(sides), torch.tensor(want))


def test_fcos_loss_by_hand_and_ignore_regions():
    # points (4, 4) and (12, 4); the person [0, 0, 8, 8] holds the first, centred
    priors, coder = point_priors([8])([(1, 2)]), PointDistanceCoder()
    loss = FCOSLoss(FCOSAssigner(1.5, None, 0.5, True, 2**20), 0.25, 2.0, "giou", 1.0, 1.0)
    out = zeros(2, centerness=True)
    exact = coder.encode(priors.boxes[:1], torch.tensor([[0.0, 0, 8, 8]]))
    out.box_regression.data[0, 0] = exact[0]
    got = loss(out, priors, batch_of([[0.0, 0, 8, 8]]), coder)
    focal = 0.5**2 * LOG2  # p = 0.5 for both priors, alpha 0.25 / 0.75
    assert got["cls"].item() == pytest.approx(0.25 * focal + 0.75 * focal, rel=1e-5)
    assert got["box"].item() == pytest.approx(0.0, abs=1e-6)
    assert got["quality"].item() == pytest.approx(LOG2, rel=1e-5)  # target 1, logit 0
    # an ignore region over the second point: it is no negative
    got = loss(out, priors, batch_of([[0.0, 0, 8, 8], [8.0, 0, 16, 8]], [False, True]), coder)
    assert got["cls"].item() == pytest.approx(0.25 * focal, rel=1e-5)
    sum(got.values()).backward()
    assert out.cls_logits.grad[0, 1, 0] == 0 and out.cls_logits.grad[0, 0, 0] < 0


def test_yolov3_loss_by_hand_and_the_ignore_threshold():
    # one 8x8 anchor per cell, cells x 0..8 and 8..16; the person [0, 0, 16, 8] is centred at
    # x = 8: the second cell holds it (half-open cells)
    gen = SizedAnchorGenerator([8], [[(8, 8)]])
    priors, coder = gen([(1, 2)]), YoloCoder([(8, 8)], [8.0])
    loss = YOLOv3Loss(YOLOv3Assigner(0.7, 0.5, True, 2**20), box_weight=1.0, obj_weight=1.0)
    out = zeros(2, objectness=True)
    got = loss(out, priors, batch_of([[0.0, 0, 16, 8]]), coder)
    # the first prior predicts its anchor [0, 0, 8, 8]: IoU 0.5 with the person, a negative
    assert got["obj"].item() == pytest.approx(2 * LOG2, rel=1e-5)
    assert got["cls"].item() == pytest.approx(LOG2, rel=1e-5)
    # x / y offsets: BCE at logit 0 (log 2 each); w: log(16 / 8) against 0 squared; h: 0
    assert got["box"].item() == pytest.approx(2 * LOG2 + LOG2**2, rel=1e-5)
    # moved 3 px right and twice as wide, the first prior predicts [-1, 0, 15, 8]: IoU
    # 120 / 136 > 0.7 with the person: no longer a negative for objectness
    out = zeros(2, objectness=True)
    out.box_regression.data[0, 0, 0] = torch.logit(torch.tensor(0.875))
    out.box_regression.data[0, 0, 2] = LOG2
    got = loss(out, priors, batch_of([[0.0, 0, 16, 8]]), coder)
    assert got["obj"].item() == pytest.approx(LOG2, rel=1e-5)
    got["obj"].backward()
    assert out.objectness.grad[0, 0, 0] == 0 and out.objectness.grad[0, 1, 0] < 0


class Fixed:
    """An assigner answering a fixed result (the loss alone under test)."""

    uses_predictions = False

    def __init__(self, result: AssignResult):
        self.result = result

    def __call__(self, priors, targets, predictions=None):
        return self.result


def test_yolox_loss_iou_targets_ignored_priors_and_the_late_l1():
    priors, coder = point_priors([8])([(1, 3)]), DeltaCoder()
    result = AssignResult(
        torch.tensor([[0, BACKGROUND, IGNORE]]), soft_targets=torch.tensor([[0.6, 0.0, 0.0]])
    )
    loss = YOLOXLoss(Fixed(result), "giou", 5.0, 1.0, l1_last_iters=10)
    person = torch.tensor([[0.0, 0, 8, 8]])
    out = zeros(3, objectness=True)
    out.box_regression.data[0, 0, :2] = 0.25  # off by 2 px: an L1 of 0.5 on the raw codes
    got = loss(out, priors, batch_of(person.tolist()), coder)
    assert got["obj"].item() == pytest.approx(2 * LOG2, rel=1e-5)  # the IGNORE prior: nothing
    assert got["cls"].item() == pytest.approx(LOG2, rel=1e-5)
    assert got["l1"].item() == 0.0  # not in the last 10 of 100 steps
    sum(got.values()).backward()
    assert out.cls_logits.grad[0, 0, 0].item() == pytest.approx(0.5 - 0.6)  # sigmoid - IoU
    assert out.objectness.grad[0, 2, 0] == 0 and out.objectness.grad[0, 1, 0] > 0
    loss.set_progress(89, 100)
    assert loss(out, priors, batch_of(person.tolist()), coder)["l1"].item() == 0.0
    loss.set_progress(90, 100)
    assert loss(out, priors, batch_of(person.tolist()), coder)["l1"].item() == pytest.approx(0.5)


def test_the_loss_is_picked_by_the_head():
    assert isinstance(build_loss(load_config("configs/tiny.yaml")), DenseLoss)
    assert isinstance(build_loss(load_config("configs/tiny_fcos.yaml")), FCOSLoss)
    assert isinstance(build_loss(load_config("configs/tiny_yolov3.yaml")), YOLOv3Loss)
    assert isinstance(build_loss(load_config("configs/tiny_yolox.yaml")), YOLOXLoss)
    with pytest.raises(ConfigError, match=r"loss.cls: the fcos head's loss takes \('focal',\)"):
        build_loss(load_config("configs/tiny_fcos.yaml", ["loss.cls=quality_focal"]))
    with pytest.raises(ConfigError, match=r"assign.scale_bounds: 1 bounds for 3 pyramid levels"):
        build_detector(load_config("configs/tiny_fcos.yaml", ["assign.scale_bounds=[64]"]))
    with pytest.raises(ConfigError, match=r"loss.box: the yolox head's loss takes"):
        build_loss(load_config("configs/tiny_yolox.yaml", ["loss.box=smooth_l1"]))
