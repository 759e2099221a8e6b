"""From dense head outputs to per-image detections, batched (no Python loop over images in NMS).

Per image and pass: top-k candidates by score, score threshold, decode against the priors with
the head's box coder, clip to the image, map back to the network input (test-time passes run on
mirrored or resized copies: crowdet.postprocess.tta); then the suppression postprocess.nms
chooses (crowdet.postprocess.suppress) over the whole batch at once
(image index as the NMS group), best `max_dets` per image, mapped back to original-image pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from crowdet.postprocess.groups import rank_in_group
from crowdet.postprocess.suppress import Candidates, suppress
from crowdet.postprocess.tta import boxes_to_input
from crowdet.postprocess.vote import box_voting
from crowdet.structures import Detections, HeadOutput


@dataclass
class PassOutput:
    """Head outputs of one pass over a batch, the priors (A, 4) they belong to, and image_sizes
    (B, 2) (h, w) of this pass's input, which is the batch's network input resized by ``resize``
    (fy, fx) and, when ``mirrored``, flipped left-right within each image's width
    (crowdet.postprocess.tta)."""

    outputs: HeadOutput
    priors: torch.Tensor
    image_sizes: torch.Tensor
    resize: tuple[float, float] = (1.0, 1.0)
    mirrored: bool = False


def postprocess(
    passes: Sequence[PassOutput],
    scales: torch.Tensor,
    coder,
    score_threshold: float = 0.05,
    pre_nms_topk: int = 1000,
    iou_threshold: float = 0.5,
    max_dets: int = 500,
    nms: str = "hard",
    soft_sigma: float = 0.5,
    vote_iou: float = 0.0,
    soft_method: str = "gaussian",
    instances: int = 1,
) -> list[Detections]:
    """Passes over the same batch (one, or several for test-time augmentation), scales (B,)
    from original-image pixels to the network input and the head's box coder -> one Detections
    per image in original-image pixels.

    Each pass's best candidates are mapped back to the network input (un-mirrored, un-resized)
    and all passes' candidates join before NMS. vote_iou > 0: each kept box is voted with the
    candidates around it (`box_voting`). nms: the suppression (crowdet.postprocess.suppress);
    instances: the head's predictions per prior (K > 1: the outputs come K per prior)."""
    bsz, _, num_classes = passes[0].outputs.cls_logits.shape
    parts = [
        _pass_candidates(p, coder, score_threshold, pre_nms_topk, instances, i)
        for i, p in enumerate(passes)
    ]
    c = _join(parts)
    groups = c.image * num_classes + c.labels
    kept, final = suppress(
        c, groups, nms, iou_threshold, soft_method, soft_sigma, max_per_group=max_dets
    )  # sorted by score
    img_idx = c.image
    kept = _cap_per_image(kept, img_idx[kept], max_dets)  # grouped by image, by score within
    counts = torch.bincount(img_idx[kept], minlength=bsz).tolist()
    if vote_iou > 0:  # the votes weigh the scores before any decay
        kept_boxes = box_voting(c.boxes, c.scores, kept, groups, vote_iou)
    else:
        kept_boxes = c.boxes[kept]
    scale = scales[img_idx[kept], None]
    boxes = kept_boxes / scale
    visible = [None] * bsz if c.visible is None else (c.visible[kept] / scale).split(counts)
    parts = zip(
        boxes.split(counts), final[kept].split(counts), c.labels[kept].split(counts), visible
    )
    return [Detections(b, s, lab, v) for b, s, lab, v in parts]


def _join(parts: list[Candidates]) -> Candidates:
    """The candidates of all passes together."""

    def cat(name):
        values = [getattr(p, name) for p in parts]
        return None if values[0] is None else torch.cat(values)

    return Candidates(**{name: cat(name) for name in Candidates.__dataclass_fields__})


def _pass_candidates(
    p: PassOutput, coder, score_threshold: float, pre_nms_topk: int, instances: int, number: int
) -> Candidates:
    """`_candidates` of one pass, in the network input's pixels, with the extras the head gives:
    visible boxes, densities, and the prior set of each (pass `number`, image, prior)."""
    out = p.outputs
    sc, boxes, labels, img_idx, prior_idx = _candidates(
        out.cls_logits, out.box_regression, p.priors, p.image_sizes, coder,
        score_threshold, pre_nms_topk,
    )  # fmt: skip
    widths = p.image_sizes[img_idx, 1]
    boxes = boxes_to_input(boxes, widths, p.resize, p.mirrored)
    visible = density = None
    if out.second_box is not None:
        visible = coder.decode(p.priors[prior_idx], out.second_box[img_idx, prior_idx])
        visible = boxes_to_input(_clip(visible, p.image_sizes[img_idx]), widths, p.resize,
                                 p.mirrored)  # fmt: skip
    if out.density is not None:
        density = out.density[img_idx, prior_idx, 0].sigmoid()
    bsz, num_priors = out.cls_logits.shape[:2]
    sets = (number * bsz + img_idx) * num_priors + prior_idx // instances
    return Candidates(sc, boxes, labels, img_idx, visible, density, sets)


def _clip(boxes: torch.Tensor, image_sizes: torch.Tensor) -> torch.Tensor:
    """boxes (N, 4) clipped to their images' (h, w) (N, 2)."""
    hw = image_sizes.to(boxes.dtype)
    return torch.minimum(boxes.clamp(min=0), hw[:, [1, 0, 1, 0]])


def _candidates(
    cls_logits, box_regression, priors, image_sizes, coder, score_threshold, pre_nms_topk
):
    """The best pre_nms_topk (prior, class) of each image above score_threshold, decoded by the
    coder and clipped to the image -> scores (N,), boxes (N, 4), labels (N,), image index (N,),
    prior index (N,)."""
    bsz, _, num_classes = cls_logits.shape
    scores = cls_logits.sigmoid().flatten(1)  # (B, A*C)
    k = min(pre_nms_topk, scores.shape[1])
    top_scores, top_idx = scores.topk(k, dim=1)  # (B, k)
    keep = top_scores > score_threshold
    img_idx = torch.arange(bsz, device=scores.device)[:, None].expand(bsz, k)[keep]
    flat = top_idx[keep]
    prior_idx, labels = flat // num_classes, flat % num_classes
    boxes = coder.decode(priors[prior_idx], box_regression[img_idx, prior_idx])
    boxes = _clip(boxes, image_sizes[img_idx])
    return top_scores[keep], boxes, labels, img_idx, prior_idx


def _cap_per_image(kept: torch.Tensor, img: torch.Tensor, max_dets: int) -> torch.Tensor:
    """Keep the first `max_dets` entries of each image in `kept` (already sorted by score),
    grouped by image."""
    first = rank_in_group(img) < max_dets
    return kept[first][torch.sort(img[first], stable=True).indices]
