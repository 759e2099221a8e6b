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
    (crowdet.postprocess.tta). ``scores`` (B, A, C): the detection scores the head makes of its
    outputs (``DenseHead.scores``: e.g. FCOS's sqrt(class x centerness)); None: the sigmoid of
    the class logits."""

    outputs: HeadOutput
    priors: torch.Tensor
    image_sizes: torch.Tensor
    resize: tuple[float, float] = (1.0, 1.0)
    mirrored: bool = False
    scores: torch.Tensor | None = None


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
    return select_detections(
        _join(parts), bsz, num_classes, scales, iou_threshold, max_dets, nms, soft_sigma,
        vote_iou, soft_method,
    )  # fmt: skip


def postprocess_decoded(
    scores: torch.Tensor,
    boxes: torch.Tensor,
    scales: torch.Tensor,
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
    """The post-processing of `postprocess` on outputs already decoded (an exported model's):
    scores (B, A, C) probabilities (`DenseHead.scores`), boxes (B, A, 4) xyxy in network-input
    pixels clipped to each image, scales (B,) -> one Detections per image in original-image
    pixels. One pass (no test-time augmentation); no visible boxes or densities."""
    bsz, num_priors, num_classes = scores.shape
    top, img_idx, prior_idx, labels = _top_candidates(scores, score_threshold, pre_nms_topk)
    sets = img_idx * num_priors + prior_idx // instances
    c = Candidates(top, boxes[img_idx, prior_idx], labels, img_idx, prior_set=sets)
    return select_detections(
        c, bsz, num_classes, scales, iou_threshold, max_dets, nms, soft_sigma, vote_iou,
        soft_method,
    )  # fmt: skip


def select_detections(
    c: Candidates, bsz, num_classes, scales, iou_threshold, max_dets, nms, soft_sigma, vote_iou,
    soft_method="gaussian",
) -> list[Detections]:  # fmt: skip
    """Candidates of one or more passes -> the suppression over the batch, best max_dets per
    image, mapped to original-image pixels."""
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


def dense_scores(outputs: HeadOutput) -> torch.Tensor:
    """(B, A, C) class probabilities of a head's outputs: the scores of a pass that brings none
    of its own (`PassOutput.scores`, which `DenseHead.scores` fills)."""
    return outputs.cls_logits.sigmoid()


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
    scores = dense_scores(out) if p.scores is None else p.scores
    sc, boxes, labels, img_idx, prior_idx = _candidates(
        scores, out.box_regression, p.priors, p.image_sizes, coder, score_threshold, pre_nms_topk
    )
    widths = p.image_sizes[img_idx, 1]
    boxes = boxes_to_input(boxes, widths, p.resize, p.mirrored)
    visible = density = None
    if out.second_box is not None:
        visible = coder.decode(p.priors[prior_idx], out.second_box[img_idx, prior_idx])
        visible = clip_to_images(visible, p.image_sizes[img_idx])
        visible = boxes_to_input(visible, widths, p.resize, p.mirrored)
    if out.density is not None:
        density = out.density[img_idx, prior_idx, 0].sigmoid()
    bsz, num_priors = out.cls_logits.shape[:2]
    sets = (number * bsz + img_idx) * num_priors + prior_idx // instances
    return Candidates(sc, boxes, labels, img_idx, visible, density, sets)


def clip_to_images(boxes: torch.Tensor, image_sizes: torch.Tensor) -> torch.Tensor:
    """boxes (..., 4) xyxy clipped to [0, w] x [0, h] of image_sizes (..., 2) (h, w)."""
    hw = image_sizes.to(boxes.dtype)
    return torch.minimum(boxes.clamp(min=0), hw[..., [1, 0, 1, 0]])


def _candidates(scores, box_regression, priors, image_sizes, coder, score_threshold, pre_nms_topk):
    """Of scores (B, A, C), the best pre_nms_topk (prior, class) of each image above
    score_threshold, decoded by the coder and clipped to the image -> scores (N,), boxes (N, 4),
    labels (N,), image index (N,), prior index (N,)."""
    top, img_idx, prior_idx, labels = _top_candidates(scores, score_threshold, pre_nms_topk)
    boxes = coder.decode(priors[prior_idx], box_regression[img_idx, prior_idx])
    return top, clip_to_images(boxes, image_sizes[img_idx]), labels, img_idx, prior_idx


def _top_candidates(scores: torch.Tensor, score_threshold: float, pre_nms_topk: int):
    """scores (B, A, C) -> the best pre_nms_topk (prior, class) of each image above
    score_threshold: their scores, image index, prior index and label (N,) each."""
    bsz, _, num_classes = scores.shape
    flat_scores = scores.flatten(1)  # (B, A*C)
    k = min(pre_nms_topk, flat_scores.shape[1])
    top_scores, top_idx = flat_scores.topk(k, dim=1)  # (B, k)
    keep = top_scores > score_threshold
    img_idx = torch.arange(bsz, device=scores.device)[:, None].expand(bsz, k)[keep]
    flat = top_idx[keep]
    return top_scores[keep], img_idx, flat // num_classes, flat % num_classes


def _cap_per_image(kept: torch.Tensor, img: torch.Tensor, max_dets: int) -> torch.Tensor:
    """Keep the first `max_dets` entries of each image in `kept` (already sorted by score),
    grouped by image."""
    first = rank_in_group(img) < max_dets
    return kept[first][torch.sort(img[first], stable=True).indices]
