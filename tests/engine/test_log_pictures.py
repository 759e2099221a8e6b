"""TensorBoard validation pictures are drawn on the network-input-sized image: a huge validation
image costs its decode, not pictures at its own size."""

import cv2
import numpy as np

from crowdet.data.records import ImageRecord
from crowdet.engine.log import prediction_pictures
from crowdet.visualize import GT_COLOR, PRED_COLOR

TITLE = 18  # the title bar above each half of a panel


def test_pictures_are_drawn_at_the_network_input_size(tmp_path):
    path = tmp_path / "big.png"
    cv2.imwrite(str(path), np.full((1000, 2000, 3), 40, np.uint8))
    gt = np.array([[200, 100, 600, 500]], np.float32)  # x 16..48, y 8..40 at 160 / 2000
    rec = ImageRecord("big", str(path), 2000, 1000, fbox=gt, vbox=gt, hbox=gt,
                      ignore=np.zeros(1, bool), head_ignore=np.zeros(1, bool))  # fmt: skip
    dets = {"big": (np.array([[1000, 500, 1500, 900]], np.float32), np.array([0.9]))}
    (panel,) = prediction_pictures([rec], dets, "full", 1, input_size=160)
    left, right = panel[:, :160], panel[:, 166:]
    assert panel.shape[0] == 80 + TITLE
    assert tuple(left[TITLE + 8, 30]) == GT_COLOR  # the box's top edge, scaled by 0.08
    assert tuple(left[TITLE + 24, 16]) == GT_COLOR  # its left edge
    assert tuple(left[TITLE + 24, 30]) == (40, 40, 40)  # inside: the image
    assert tuple(right[TITLE + 56, 80]) == PRED_COLOR  # the detection's left edge (x 80)
    full = prediction_pictures([rec], dets, "full", 1)[0]
    assert full.shape[0] == 1000 + TITLE and tuple(full[TITLE + 100, 300]) == GT_COLOR
