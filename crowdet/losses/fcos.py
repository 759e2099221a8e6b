"""The FCOS loss (as torchvision's FCOS): sigmoid focal classification over positives and
negatives, an IoU loss (GIoU) on the decoded boxes of the positives, and binary cross-entropy of
the quality branch on the positives, each summed and normalised by the number of positives.

The quality target is FCOS's centerness of the point in its person's box,
sqrt(min(l, r) / max(l, r) x min(t, b) / max(t, b)) (0 for a point outside the box), or, for an
IoU-quality head, the IoU of the (detached) predicted box with the person. Priors the assigner
marks IGNORE add to no term.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from crowdet import boxes as B
from crowdet.assign.codes import BACKGROUND
from crowdet.losses.box import box_loss
from crowdet.losses.common import assign, in_graph, positive_norm
from crowdet.structures import Assigner, Batch, HeadOutput, Predictions, Priors


class FCOSLoss:
    def __init__(
        self,
        assigner: Assigner,
        focal_alpha: float,
        focal_gamma: float,
        box: str,
        box_weight: float,
        quality_weight: float,
        num_pos_reducer: Callable | None = None,
    ):
        self.assigner = assigner
        self.alpha, self.gamma = focal_alpha, focal_gamma
        self.box, self.box_weight, self.quality_weight = box, box_weight, quality_weight
        self.num_pos_reducer = num_pos_reducer  # e.g. an all-reduce mean over DDP ranks

    def __call__(
        self, outputs: HeadOutput, priors: Priors, batch: Batch, coder
    ) -> dict[str, torch.Tensor]:
        """FCOS head outputs (cls_logits, box_regression, centerness or iou_quality) ->
        {"cls", "box", "quality"} scalars."""
        quality = outputs.centerness if outputs.centerness is not None else outputs.iou_quality
        matched = assign(
            self.assigner, priors, batch, lambda: _predictions(outputs, quality, priors, coder)
        ).matched
        pos = matched >= 0
        norm = positive_norm(pos, self.num_pos_reducer)
        b_idx, a_idx = pos.nonzero(as_tuple=True)
        gt = batch.boxes[b_idx, matched[b_idx, a_idx]].to(outputs.box_regression)
        prior_boxes, regression = priors.boxes[a_idx], outputs.box_regression[b_idx, a_idx]

        target = torch.zeros_like(outputs.cls_logits)
        target[pos, 0] = 1.0  # a single class, person
        mask = pos | (matched == BACKGROUND)
        loss_cls = sigmoid_focal_loss(
            outputs.cls_logits[mask], target[mask], self.alpha, self.gamma, reduction="sum"
        )
        loss_box = box_loss(self.box, coder, prior_boxes, regression, gt)
        with torch.no_grad():
            if outputs.centerness is not None:
                q_target = centerness(coder.encode(prior_boxes, gt))
            else:
                pred = coder.decode(prior_boxes, regression)
                q_target = B.paired_iou(pred, gt)
        loss_quality = F.binary_cross_entropy_with_logits(
            quality[b_idx, a_idx, 0], q_target, reduction="sum"
        )
        return {
            "cls": loss_cls / norm + in_graph(outputs),
            "box": self.box_weight * loss_box / norm,
            "quality": self.quality_weight * loss_quality / norm,
        }


def centerness(sides: torch.Tensor) -> torch.Tensor:
    """sides (..., 4) distances (l, t, r, b) -> (...) FCOS centerness, 0 outside the box."""
    sides = sides.clamp(min=0)
    lr, tb = sides[..., [0, 2]], sides[..., [1, 3]]
    ratio = (lr.amin(-1) / lr.amax(-1).clamp(min=B.EPS)) * (
        tb.amin(-1) / tb.amax(-1).clamp(min=B.EPS)
    )
    return ratio.sqrt()


def _predictions(outputs: HeadOutput, quality, priors: Priors, coder) -> Predictions:
    """Detached detection scores and decoded boxes, for an assigner that uses them."""
    scores = (outputs.cls_logits.sigmoid() * quality.sigmoid()).sqrt().detach()
    return Predictions(scores, coder.decode(priors.boxes, outputs.box_regression.detach()))
