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
    mirrored: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> list[Detections]:
    """cls_logits (B, A, C), box_deltas (B, A, 4), priors (A, 4), image_sizes (B, 2) (h, w) of the
    network input, scales (B,) -> one Detections per image in original-image pixels.

    vote_iou > 0: each kept box is voted with the candidates around it (`box_voting`).
    mirrored: (cls_logits, box_deltas) of the same images mirrored left-right (`mirror_images`);
    their candidates are mirrored back and join the others before NMS (flip test-time
    augmentation)."""
    bsz, _, num_classes = cls_logits.shape
    sc, boxes, labels, img_idx = _candidates(
        cls_logits, box_deltas, priors, image_sizes, score_threshold, pre_nms_topk
    )
    if mirrored is not None:
        sc2, boxes2, labels2, img2 = _candidates(
            *mirrored, priors, image_sizes, score_threshold, pre_nms_topk
        )
        width = image_sizes[img2, 1].to(boxes2.dtype)
        boxes2 = torch.stack(
            [width - boxes2[:, 2], boxes2[:, 1], width - boxes2[:, 0], boxes2[:, 3]], 1
        )
        sc, boxes = torch.cat([sc, sc2]), torch.cat([boxes, boxes2])
        labels, img_idx = torch.cat([labels, labels2]), torch.cat([img_idx, img2])
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


def _candidates(cls_logits, box_deltas, priors, image_sizes, score_threshold, pre_nms_topk):
    """The best pre_nms_topk (prior, class) of each image above score_threshold, decoded and
    clipped to the image -> scores (N,), boxes (N, 4), labels (N,), image index (N,)."""
    bsz, _, num_classes = cls_logits.shape
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
    return top_scores[keep], boxes, labels, img_idx


def mirror_images(images: torch.Tensor, image_sizes: torch.Tensor) -> torch.Tensor:
    """images (B, C, H, W) padded on the right and bottom, image_sizes (B, 2) (h, w) -> each image
    mirrored left-right within its own width, the padding left where it was."""
    width = images.shape[-1]
    cols = torch.arange(width, device=images.device)
    w = image_sizes[:, 1:2].to(cols.device)
    src = torch.where(cols < w, w - 1 - cols, cols)  # (B, W)
    index = src[:, None, None, :].expand_as(images)
    return torch.gather(images, 3, index)


def _cap_per_image(kept: torch.Tensor, img: torch.Tensor, max_dets: int) -> torch.Tensor:
    """Keep the first `max_dets` entries of each image in `kept` (already sorted by score)."""
    order = torch.sort(img, stable=True).indices
    kept, img = kept[order], img[order]
    counts = torch.bincount(img)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(img), device=img.device) - starts[img]
    return kept[rank < max_dets]
