import torch
from torchvision.ops import nms

from crowdet import boxes as B
from crowdet.postprocess.decode import postprocess


def reference(cls_logits, deltas, priors, sizes, scales, thr, topk, iou, max_dets):
    """Slow, obvious: one image at a time, one class."""
    out = []
    for i in range(cls_logits.shape[0]):
        s = cls_logits[i, :, 0].sigmoid()
        top = s.topk(min(topk, len(s))).indices
        top = top[s[top] > thr]
        bx = B.decode(priors[top], deltas[i, top])
        h, w = sizes[i].tolist()
        bx = B.clip(bx, h, w)
        keep = nms(bx, s[top], iou)[:max_dets]
        out.append((bx[keep] / scales[i], s[top][keep]))
    return out


def test_postprocess_matches_per_image_reference():
    g = torch.Generator().manual_seed(0)
    b, a = 3, 400
    xy = torch.rand(a, 2, generator=g) * 100
    priors = torch.cat([xy, xy + 10 + torch.rand(a, 2, generator=g) * 30], 1)
    logits = torch.randn(b, a, 1, generator=g) * 2
    deltas = torch.randn(b, a, 4, generator=g) * 0.3
    sizes = torch.tensor([[120, 100], [90, 130], [140, 140]])
    scales = torch.tensor([1.0, 0.5, 2.0])
    got = postprocess(logits, deltas, priors, sizes, scales, 0.2, 150, 0.5, 20)
    want = reference(logits, deltas, priors, sizes, scales, 0.2, 150, 0.5, 20)
    for det, (wb, ws) in zip(got, want):
        torch.testing.assert_close(det.scores, ws)
        torch.testing.assert_close(det.boxes, wb)
    assert any(len(d.scores) == 20 for d in got)  # the cap was reached somewhere


def test_no_candidates_gives_empty_detections():
    priors = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    dets = postprocess(
        torch.full((2, 1, 1), -10.0), torch.zeros(2, 1, 4), priors,
        torch.tensor([[20, 20], [20, 20]]), torch.ones(2),
    )  # fmt: skip
    assert [len(d.scores) for d in dets] == [0, 0]
