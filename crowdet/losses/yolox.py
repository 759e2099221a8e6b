"""The YOLOX loss: binary cross-entropy of the objectness over positives and negatives, binary
cross-entropy of the classes on the positives against IoU targets (the assigner's soft targets:
the IoU of each positive's predicted box with its person; 1 when it gives none), an IoU loss
(torchvision.ops, `box`) on the decoded boxes of the positives, and, over the last
`l1_last_iters` steps of a run, an L1 term on the raw box regression against the coded person.

Each term is summed and normalised by the number of positives. The predictions SimOTA ranks are
sqrt(class x objectness probability) and the decoded boxes, as YOLOX's cost. Priors the assigner
marks IGNORE add to no term.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from crowdet.assign.codes import BACKGROUND
from crowdet.losses.box import box_loss
from crowdet.losses.common import assign, in_graph, positive_norm
from crowdet.losses.yolov3 import objectness_predictions
from crowdet.structures import Assigner, Batch, HeadOutput, Predictions, Priors


class YOLOXLoss:
    def __init__(
        self,
        assigner: Assigner,
        box: str,
        box_weight: float,
        obj_weight: float,
        l1_last_iters: int,
        num_pos_reducer: Callable | None = None,
    ):
        self.assigner = assigner
        self.box, self.box_weight, self.obj_weight = box, box_weight, obj_weight
        self.l1_last_iters, self.l1 = l1_last_iters, False
        self.num_pos_reducer = num_pos_reducer  # e.g. an all-reduce mean over DDP ranks

    def set_progress(self, iteration: int, max_iters: int) -> None:
        """Told by the trainer before each step: the L1 term is on over the last steps."""
        self.l1 = self.l1_last_iters > 0 and iteration >= max_iters - self.l1_last_iters

    def __call__(
        self, outputs: HeadOutput, priors: Priors, batch: Batch, coder
    ) -> dict[str, torch.Tensor]:
        """YOLOX head outputs -> {"cls", "box", "obj"} (and "l1" when l1_last_iters > 0)."""
        result = assign(self.assigner, priors, batch, lambda: _ranked(outputs, priors, coder))
        matched = result.matched
        pos = matched >= 0
        norm = positive_norm(pos, self.num_pos_reducer)
        b_idx, a_idx = pos.nonzero(as_tuple=True)
        gt = batch.boxes[b_idx, matched[b_idx, a_idx]].to(outputs.box_regression)
        prior_boxes, regression = priors.boxes[a_idx], outputs.box_regression[b_idx, a_idx]

        mask = pos | (matched == BACKGROUND)
        obj = outputs.objectness[..., 0]
        loss_obj = F.binary_cross_entropy_with_logits(obj[mask], pos[mask].to(obj), reduction="sum")
        cls = outputs.cls_logits[b_idx, a_idx]
        cls_target = torch.zeros_like(cls)
        soft = result.soft_targets
        cls_target[:, 0] = 1.0 if soft is None else soft[b_idx, a_idx].to(cls)  # person
        loss_cls = F.binary_cross_entropy_with_logits(cls, cls_target, reduction="sum")
        loss_box = box_loss(self.box, coder, prior_boxes, regression, gt)
        out = {
            "cls": loss_cls / norm + in_graph(outputs),
            "box": self.box_weight * loss_box / norm,
            "obj": self.obj_weight * loss_obj / norm,
        }
        if self.l1_last_iters > 0:
            l1 = F.l1_loss(regression, coder.encode(prior_boxes, gt), reduction="sum") / norm
            out["l1"] = l1 if self.l1 else 0.0 * l1
        return out


def _ranked(outputs: HeadOutput, priors: Priors, coder) -> Predictions:
    p = objectness_predictions(outputs, priors, coder)
    return Predictions(p.scores.sqrt(), p.boxes)
