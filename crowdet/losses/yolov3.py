"""The YOLOv3 loss: binary cross-entropy everywhere, as YOLOv3 trains.

- objectness: BCE over the positives (target 1) and the negatives (target 0); the priors the
  assigner marks IGNORE (the ignore threshold on the predicted boxes, ignore regions) add nothing;
- classes: BCE over the positives (the person class 1, any other class 0);
- box: BCE of the centre's sigmoid offsets within the cell against the person's offsets, plus
  the squared error of the log size against the anchor (YoloCoder's codes), on the positives.

Each term is summed and normalised by the number of positives; `box_weight` and `obj_weight`
weigh the box and objectness terms.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from crowdet.assign.codes import BACKGROUND
from crowdet.losses.common import assign, in_graph, positive_norm
from crowdet.structures import Assigner, Batch, HeadOutput, Predictions, Priors


class YOLOv3Loss:
    def __init__(
        self,
        assigner: Assigner,
        box_weight: float,
        obj_weight: float,
        num_pos_reducer: Callable | None = None,
    ):
        self.assigner = assigner
        self.box_weight, self.obj_weight = box_weight, obj_weight
        self.num_pos_reducer = num_pos_reducer  # e.g. an all-reduce mean over DDP ranks

    def __call__(
        self, outputs: HeadOutput, priors: Priors, batch: Batch, coder
    ) -> dict[str, torch.Tensor]:
        """YOLO head outputs (cls_logits, box_regression, objectness) -> {"cls", "box", "obj"}."""
        matched = assign(
            self.assigner, priors, batch, lambda: objectness_predictions(outputs, priors, coder)
        ).matched
        pos = matched >= 0
        norm = positive_norm(pos, self.num_pos_reducer)
        b_idx, a_idx = pos.nonzero(as_tuple=True)
        gt = batch.boxes[b_idx, matched[b_idx, a_idx]].to(outputs.box_regression)
        regression = outputs.box_regression[b_idx, a_idx]

        mask = pos | (matched == BACKGROUND)
        obj = outputs.objectness[..., 0]
        loss_obj = F.binary_cross_entropy_with_logits(obj[mask], pos[mask].to(obj), reduction="sum")
        cls = outputs.cls_logits[b_idx, a_idx]
        cls_target = torch.zeros_like(cls)
        cls_target[:, 0] = 1.0  # a single class, person
        loss_cls = F.binary_cross_entropy_with_logits(cls, cls_target, reduction="sum")
        codes = coder.encode(priors.boxes[a_idx], gt)
        loss_xy = F.binary_cross_entropy_with_logits(
            regression[:, :2], codes[:, :2].sigmoid(), reduction="sum"
        )
        loss_wh = F.mse_loss(regression[:, 2:], codes[:, 2:], reduction="sum")
        return {
            "cls": loss_cls / norm + in_graph(outputs),
            "box": self.box_weight * (loss_xy + loss_wh) / norm,
            "obj": self.obj_weight * loss_obj / norm,
        }


def objectness_predictions(outputs: HeadOutput, priors: Priors, coder) -> Predictions:
    """Detached scores (class x objectness probability) and decoded boxes of a YOLO head."""
    scores = outputs.cls_logits.detach().sigmoid() * outputs.objectness.detach().sigmoid()
    return Predictions(scores, coder.decode(priors.boxes, outputs.box_regression.detach()))
