"""Anchor options for other recipes' anchors (torchvision, Detectron, CrowdDet): the order of a
location's anchors, keeping area instead of height across ratios, and the centre offset."""

from __future__ import annotations

import torch

from crowdet.models.anchors import AnchorGenerator


def hw(boxes: torch.Tensor) -> list[tuple[float, float]]:
    return [(float(b[3] - b[1]), float(b[2] - b[0])) for b in boxes]


def test_octave_major_is_the_default_order_and_ratio_major_the_other():
    default = AnchorGenerator([8], 1.0, [1.0, 2.0], [1.0, 4.0])
    assert hw(default.cell_anchors(8)) == [(8, 8), (8, 2), (16, 16), (16, 4)]
    ratio_major = AnchorGenerator([8], 1.0, [1.0, 2.0], [1.0, 4.0], order="ratio_major")
    assert hw(ratio_major.cell_anchors(8)) == [(8, 8), (16, 16), (8, 2), (16, 4)]


def test_keep_area_gives_every_ratio_the_same_area():
    gen = AnchorGenerator([8], 1.0, [1.0], [1.0, 4.0, 0.25], keep="area")
    # height = size * sqrt(ratio), width = size / sqrt(ratio): area 8 x 8 for each ratio
    assert hw(gen.cell_anchors(8)) == [(8, 8), (16, 4), (4, 16)]


def test_center_offset_moves_the_anchor_centres():
    shapes = [(2, 3)]
    middle = AnchorGenerator([8], 1.0, [1.0], [1.0])(shapes).boxes
    corner = AnchorGenerator([8], 1.0, [1.0], [1.0], center_offset=0.0)(shapes).boxes
    assert middle[:3].tolist() == [[0, 0, 8, 8], [8, 0, 16, 8], [16, 0, 24, 8]]
    assert corner[:3].tolist() == [[-4, -4, 4, 4], [4, -4, 12, 4], [12, -4, 20, 4]]
    assert torch.equal(corner + 4, middle)
