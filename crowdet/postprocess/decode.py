"""From dense head outputs to per-image detections, batched (no Python loop over images in NMS).

Per image and pass: top-k candidates by score, score threshold, decode against the priors with
the head's box coder, clip to the image, map back to the network input (test-time passes run on
mirrored or resized copies: crowdet.postprocess.tta); then NMS over the whole batch at once
(image index as the NMS group), best `max_dets` per image, mapped back to original-image pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torchvision.ops import batched_nms

from crowdet.postprocess.groups import rank_in_group
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
) -> list[Detections]:
    """Passes over the same batch (one, or several for test-time augmentation), scales (B,)
    from original-image pixels to the network input and the head's box coder -> one Detections
    per image in original-image pixels.

    Each pass's best candidates are mapped back to the network input (un-mirrored, un-resized)
    and all passes' candidates join before NMS. vote_iou > 0: each kept box is voted with the
    candidates around it (`box_voting`)."""
    bsz, _, num_classes = passes[0].outputs.cls_logits.shape
    parts = [_pass_candidates(p, coder, score_threshold, pre_nms_topk) for p in passes]
    return select_detections(
        parts, bsz, num_classes, scales, iou_threshold, max_dets, nms, soft_sigma, vote_iou
    )


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
) -> list[Detections]:
    """The post-processing of `postprocess` on outputs already decoded (an exported model's):
    scores (B, A, C) probabilities (`DenseHead.scores`), boxes (B, A, 4) xyxy in network-input
    pixels clipped to each image, scales (B,) -> one Detections per image in original-image
    pixels. One pass (no test-time augmentation)."""
    bsz, _, num_classes = scores.shape
    top, img_idx, prior_idx, labels = _top_candidates(scores, score_threshold, pre_nms_topk)
    parts = [(top, boxes[img_idx, prior_idx], labels, img_idx)]
    return select_detections(
        parts, bsz, num_classes, scales, iou_threshold, max_dets, nms, soft_sigma, vote_iou
    )


def select_detections(
    parts, bsz, num_classes, scales, iou_threshold, max_dets, nms, soft_sigma, vote_iou
) -> list[Detections]:
    """Candidates (scores, boxes, labels, image index) of one or more passes -> NMS over the
    batch, best max_dets per image, mapped to original-image pixels."""
    sc, boxes, labels, img_idx = (torch.cat(column) for column in zip(*parts))
    groups = img_idx * num_classes + labels
    if nms == "soft":
        from crowdet.postprocess.nms import batched_soft_nms

        kept, sc_new = batched_soft_nms(
            boxes, sc, groups, sigma=soft_sigma, score_threshold=0.001, max_per_group=max_dets
        )
        final = sc.clone()
        final[kept] = sc_new
    else:
        kept = batched_nms(boxes, sc, groups, iou_threshold)  # sorted by score
        final = sc
    kept = _cap_per_image(kept, img_idx[kept], max_dets)  # grouped by image, by score within
    counts = torch.bincount(img_idx[kept], minlength=bsz).tolist()
    if vote_iou > 0:  # the votes weigh the scores before any decay
        kept_boxes = box_voting(boxes, sc, kept, groups, vote_iou)
    else:
        kept_boxes = boxes[kept]
    boxes = kept_boxes / scales[img_idx[kept], None]
    parts = zip(boxes.split(counts), final[kept].split(counts), labels[kept].split(counts))
    return [Detections(b, s, c) for b, s, c in parts]


def dense_scores(outputs: HeadOutput) -> torch.Tensor:
    """(B, A, C) class probabilities of a head's outputs: the scores of a pass that brings none
    of its own (`PassOutput.scores`, which `DenseHead.scores` fills)."""
    return outputs.cls_logits.sigmoid()


def _pass_candidates(p: PassOutput, coder, score_threshold: float, pre_nms_topk: int):
    """`_candidates` of one pass, in the network input's pixels."""
    out = p.outputs
    scores = dense_scores(out) if p.scores is None else p.scores
    sc, boxes, labels, img_idx = _candidates(
        scores, out.box_regression, p.priors, p.image_sizes, coder, score_threshold, pre_nms_topk
    )
    boxes = boxes_to_input(boxes, p.image_sizes[img_idx, 1], p.resize, p.mirrored)
    return sc, boxes, labels, img_idx


def _candidates(scores, box_regression, priors, image_sizes, coder, score_threshold, pre_nms_topk):
    """Of scores (B, A, C), the best pre_nms_topk (prior, class) of each image above
    score_threshold, decoded by the coder and clipped to the image -> scores (N,), boxes (N, 4),
    labels (N,), image index (N,)."""
    top, img_idx, prior_idx, labels = _top_candidates(scores, score_threshold, pre_nms_topk)
    boxes = coder.decode(priors[prior_idx], box_regression[img_idx, prior_idx])
    return top, clip_to_images(boxes, image_sizes[img_idx]), labels, img_idx


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


def clip_to_images(boxes: torch.Tensor, image_sizes: torch.Tensor) -> torch.Tensor:
    """boxes (..., 4) xyxy clipped to [0, w] x [0, h] of image_sizes (..., 2) (h, w)."""
    hw = image_sizes.to(boxes.dtype)
    return torch.minimum(boxes.clamp(min=0), hw[..., [1, 0, 1, 0]])


def _cap_per_image(kept: torch.Tensor, img: torch.Tensor, max_dets: int) -> torch.Tensor:
    """Keep the first `max_dets` entries of each image in `kept` (already sorted by score),
    grouped by image."""
    first = rank_in_group(img) < max_dets
    return kept[first][torch.sort(img[first], stable=True).indices]
