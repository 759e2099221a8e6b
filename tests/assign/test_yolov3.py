"""YOLOv3 assignment: hand-made cases with known answers (best anchor of all levels at the cell
of the centre, contests, the ignore threshold on predicted boxes, ignore regions, low-quality)."""

from __future__ import annotations

import pytest
import torch

from crowdet.assign.codes import BACKGROUND, IGNORE
from crowdet.assign.yolov3 import YOLOv3Assigner, shape_iou
from crowdet.models.anchors import SizedAnchorGenerator
from crowdet.structures import Predictions, Targets

BG, IG = BACKGROUND, IGNORE
# two levels: stride 8 with anchors 6x12 and 10x20, stride 16 with 20x40 and 30x60
GEN = SizedAnchorGenerator([8, 16], [[(6, 12), (10, 20)], [(20, 40), (30, 60)]])
PRIORS = GEN([(4, 4), (2, 2)])  # 4x4 cells x 2 anchors, then 2x2 x 2: 40 priors


def prior_index(level: int, row: int, col: int, anchor: int) -> int:
    return [0, 32][level] + (row * [4, 2][level] + col) * 2 + anchor


def yolo(ignore_iou=0.7, low_quality=False, max_elements=2**20):
    return YOLOv3Assigner(ignore_iou, 0.5, low_quality, max_elements)


def targets(boxes, ignore=None):
    boxes = torch.tensor([boxes], dtype=torch.float32)
    ignore = torch.tensor([ignore or [False] * boxes.shape[1]])
    return Targets(boxes, torch.ones(boxes.shape[:2], dtype=torch.bool), ignore)


def far_predictions(n=40):
    """Predicted boxes that overlap nothing (no ignore threshold effect)."""
    boxes = torch.tensor([[100.0, 100, 101, 101]]).expand(1, n, 4).clone()
    return Predictions(torch.full((1, n, 1), 0.5), boxes)


def test_shape_iou_by_hand():
    a, b = torch.tensor([0.0, 0, 10, 20]), torch.tensor([50.0, 50, 56, 62])
    assert shape_iou(a, b).item() == pytest.approx(72 / 200)  # 6x12 inside 10x20


def test_best_anchor_of_all_levels_at_the_cell_of_the_centre():
    # a 22 x 44 person centred on (13, 19): stride-8 cell row 2, col 1; stride-16
    # cell row 1, col 0; the best shape is 20x40 (IoU 800/968): level 1, cell row 1, col 0
    person = [2.0, -3, 24, 41]
    got = yolo()(PRIORS, targets([person]), far_predictions()).matched[0]
    assert got[prior_index(1, 1, 0, 0)] == 0
    assert (got[torch.arange(40) != prior_index(1, 1, 0, 0)] == BG).all()
    # an 8 x 14 person centred on (20, 4): best 6x12 (IoU 72/112) vs 10x20 (112/200): anchor 0
    # of the stride-8 cell row 0, col 2
    got = yolo()(PRIORS, targets([[16.0, -3, 24, 11]]), far_predictions()).matched[0]
    assert got[prior_index(0, 0, 2, 0)] == 0 and (got >= 0).sum() == 1


def test_two_people_on_one_prior_and_low_quality():
    # two 10x20 people centred in the same stride-8 cell: the better shape fit wins
    a, b = [7.0, 2, 17, 22], [8.0, 3, 17, 21]  # a is 10x20 exactly; b 9x18
    got = yolo()(PRIORS, targets([a, b]), far_predictions()).matched[0]
    assert got[prior_index(0, 1, 1, 1)] == 0 and (got == 1).sum() == 0
    got = yolo(low_quality=True)(PRIORS, targets([a, b]), far_predictions()).matched[0]
    assert got[prior_index(0, 1, 1, 1)] == 0 and (got == 1).sum() == 1


def test_ignore_threshold_on_the_predicted_boxes_and_ignore_regions():
    person, region = [2.0, -3, 24, 41], [0.0, 48, 32, 64]
    pred = far_predictions()
    pred.boxes[0, 5] = torch.tensor([2.0, -3, 24, 40])  # IoU 43/44 with the person > 0.7
    pred.boxes[0, 6] = torch.tensor([2.0, -3, 24, 20])  # IoU ~0.52: stays a negative
    got = yolo()(PRIORS, targets([person, region], [False, True]), pred).matched[0]
    assert got[5] == IG and got[6] == BG
    assert got[prior_index(1, 1, 0, 0)] == 0
    # the 6x12 anchors of the bottom stride-8 row (centres y 28: y 22..34) lie outside the
    # region (y >= 48): background
    bottom = [prior_index(0, 3, c, 0) for c in range(4)]
    assert [got[i].item() for i in bottom] == [BG] * 4
    # a region over y 20..40 holds them whole: ignored
    got = yolo()(PRIORS, targets([person, [0.0, 20, 32, 40]], [False, True]), pred).matched[0]
    assert [got[i].item() for i in bottom] == [IG] * 4
    # the ignore threshold needs the predictions: without them no prior is ignored for them
    got = yolo()(PRIORS, targets([person]), None).matched[0]
    assert got[5] == BG


def test_empty_zero_area_and_chunks():
    empty = Targets(
        torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=bool), torch.zeros(2, 0, dtype=bool)
    )
    assert (yolo()(PRIORS, empty).matched == BG).all()
    assert (yolo()(PRIORS, targets([[5.0, 5, 5, 9]]), far_predictions()).matched == BG).all()
    t = targets([[2.0, -3, 24, 41], [16.0, -3, 24, 11], [7.0, 2, 17, 22]])
    pred = far_predictions()
    pred.boxes[0, :10] = torch.tensor([7.0, 2, 17, 21])
    want = yolo(low_quality=True)(PRIORS, t, pred).matched
    assert torch.equal(yolo(low_quality=True, max_elements=3)(PRIORS, t, pred).matched, want)
