"""The dense-detector loss: assignment, sigmoid focal classification, box regression.

Both terms are sums normalised by the number of positive priors in the batch (at least 1; with
DDP, the count summed over ranks). A batch without positives still gives every head parameter a
(zero) gradient, so DDP never waits for a missing gradient.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchvision.ops import sigmoid_focal_loss

from crowdet import boxes as B
from crowdet.assign.codes import BACKGROUND
from crowdet.losses.box import box_loss
from crowdet.losses.extras import extra_terms
from crowdet.losses.quality import quality_focal_loss
from crowdet.structures import Assigner, Batch, HeadOutput, Predictions, Priors, Targets


class DenseLoss:
    def __init__(
        self,
        assigner: Assigner,
        cls: str = "focal",
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        box: str = "giou",
        box_weight: float = 2.0,
        smooth_l1_beta: float = 0.1,
        num_pos_reducer: Callable[[torch.Tensor], torch.Tensor] | None = None,
        repulsion: Callable | None = None,
    ):
        self.assigner = assigner
        self.cls = cls  # "focal" (target 1) or "quality_focal" (target = IoU of the prediction)
        self.alpha, self.gamma = focal_alpha, focal_gamma
        self.box, self.box_weight, self.beta = box, box_weight, smooth_l1_beta
        self.num_pos_reducer = num_pos_reducer  # e.g. an all-reduce mean over DDP ranks
        self.repulsion = repulsion  # crowdet.losses.repulsion.RepulsionLoss, None = off

    def __call__(
        self, outputs: HeadOutput, priors: Priors, batch: Batch, coder
    ) -> dict[str, torch.Tensor]:
        """Head outputs (cls_logits (B, A, C), box_regression (B, A, 4)), their priors and the
        head's box coder -> {"cls", "box"} scalars."""
        cls_logits, box_regression = outputs.cls_logits, outputs.box_regression
        with torch.no_grad():
            matched = self.assigner(
                priors,
                Targets(batch.boxes, batch.valid, batch.ignore),
                self._predictions(cls_logits, box_regression, priors, coder),
            ).matched
        pos = matched >= 0
        num_pos = pos.sum().float()
        if self.num_pos_reducer is not None:
            num_pos = self.num_pos_reducer(num_pos)
        norm = num_pos.clamp(min=1.0)

        b_idx, a_idx = pos.nonzero(as_tuple=True)
        gt = batch.boxes[b_idx, matched[b_idx, a_idx]]
        prior_boxes, regression = priors.boxes[a_idx], box_regression[b_idx, a_idx]
        target = torch.zeros_like(cls_logits)
        cls_mask = pos | (matched == BACKGROUND)
        if self.cls == "quality_focal":
            with torch.no_grad():
                pred = coder.decode(prior_boxes, regression)
                quality = B.iou(pred[:, None], gt[:, None])[:, 0, 0].clamp(min=0.01)
            target[b_idx, a_idx, 0] = quality  # a single class, person
            loss_cls = quality_focal_loss(cls_logits[cls_mask], target[cls_mask], self.gamma)
        else:
            target[pos, 0] = 1.0  # a single class, person (labels would index here)
            loss_cls = sigmoid_focal_loss(
                cls_logits[cls_mask], target[cls_mask], self.alpha, self.gamma, reduction="sum"
            )

        loss_box = box_loss(self.box, coder, prior_boxes, regression, gt, self.beta)
        # keep every parameter in the graph when there are no positives or no negatives
        zero = 0.0 * (cls_logits.sum() + box_regression.sum())
        g_idx = matched[b_idx, a_idx]
        extras = extra_terms(
            outputs, prior_boxes, batch, coder, b_idx, a_idx, g_idx, norm,
            self.box, self.beta, self.box_weight,
        )  # fmt: skip
        out = {"cls": loss_cls / norm + zero, "box": self.box_weight * loss_box / norm, **extras}
        if self.repulsion is not None:
            pred = coder.decode(prior_boxes, regression)
            out.update(self.repulsion(pred, prior_boxes, b_idx, g_idx, batch, norm))
        return out

    def _predictions(self, cls_logits, box_regression, priors: Priors, coder) -> Predictions | None:
        """The detached predictions (B, A, C) scores and (B, A, 4) boxes decoded by the head's
        coder, for an assigner that uses them; else None."""
        if not self.assigner.uses_predictions:
            return None
        boxes = coder.decode(priors.boxes, box_regression.detach())
        return Predictions(cls_logits.detach().sigmoid(), boxes)
