"""From dense head outputs to per-image detections, batched (no Python loop over images in NMS).

Per image: top-k candidates by score, score threshold, decode against the priors, clip to the
image, NMS over the whole batch at once (image index as the NMS group), best `max_dets` per image,
then mapped back to original-image pixels.
"""

from __future__ import annotations

import torch
from torchvision.ops import batched_nms

from crowdet import boxes as B
from crowdet.postprocess.vote import box_voting
from crowdet.structures import Detections


def postprocess(
    cls_logits: torch.Tensor,
    box_deltas: torch.Tensor,
    priors: torch.Tensor,
    image_sizes: torch.Tensor,
    scales: torch.Tensor,
    score_threshold: float = 0.05,
    pre_nms_topk: int = 1000,
    iou_threshold: float = 0.5,
    max_dets: int = 500,
    nms: str = "hard",
    soft_sigma: float = 0.5,
    vote_iou: float = 0.0,
    soft_min_score: float = 0.001,
    cap_rounds: bool = True,
) -> list[Detections]:
    """cls_logits (B, A, C), box_deltas (B, A, 4), priors (A, 4), image_sizes (B, 2) (h, w) of the
    network input, scales (B,) -> one Detections per image in original-image pixels.
    vote_iou > 0: each kept box is voted with the candidates around it (`box_voting`)."""
    bsz, num_priors, num_classes = cls_logits.shape
    scores = cls_logits.sigmoid().flatten(1)  # (B, A*C)
    k = min(pre_nms_topk, scores.shape[1])
    top_scores, top_idx = scores.topk(k, dim=1)  # (B, k)
    keep = top_scores > score_threshold
    img_idx = torch.arange(bsz, device=scores.device)[:, None].expand(bsz, k)[keep]
    flat = top_idx[keep]
    prior_idx, labels = flat // num_classes, flat % num_classes
    boxes = B.decode(priors[prior_idx], box_deltas[img_idx, prior_idx])
    hw = image_sizes[img_idx].to(boxes.dtype)
    boxes = torch.minimum(boxes.clamp(min=0), hw[:, [1, 0, 1, 0]])
    sc = top_scores[keep]
    groups = img_idx * num_classes + labels
    if nms == "soft":
        from crowdet.postprocess.nms import batched_soft_nms

        kept, sc_new = batched_soft_nms(
            boxes,
            sc,
            groups,
            sigma=soft_sigma,
            score_threshold=soft_min_score,
            max_per_group=max_dets if cap_rounds else 0,
        )
        sc = sc.clone()
        sc[kept] = sc_new
    else:
        kept = batched_nms(boxes, sc, groups, iou_threshold)  # sorted by score
    kept = _cap_per_image(kept, img_idx[kept], max_dets)  # grouped by image, by score within
    counts = torch.bincount(img_idx[kept], minlength=bsz).tolist()
    if vote_iou > 0:
        kept_boxes = box_voting(boxes, top_scores[keep], kept, groups, vote_iou)
    else:
        kept_boxes = boxes[kept]
    boxes = kept_boxes / scales[img_idx[kept], None]
    parts = zip(boxes.split(counts), sc[kept].split(counts), labels[kept].split(counts))
    return [Detections(b, s, c) for b, s, c in parts]


def _cap_per_image(kept: torch.Tensor, img: torch.Tensor, max_dets: int) -> torch.Tensor:
    """Keep the first `max_dets` entries of each image in `kept` (already sorted by score)."""
    order = torch.sort(img, stable=True).indices
    kept, img = kept[order], img[order]
    counts = torch.bincount(img)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(img), device=img.device) - starts[img]
    return kept[rank < max_dets]
