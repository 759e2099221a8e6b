import torch
from torchvision.ops import nms

from crowdet import boxes as B
from crowdet.postprocess.decode import mirror_images, postprocess


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


def test_mirror_images_within_each_width():
    images = torch.arange(2 * 1 * 2 * 5, dtype=torch.float32).view(2, 1, 2, 5)
    sizes = torch.tensor([[2, 3], [1, 5]])  # image 0 is 3 px wide (2 px of padding)
    out = mirror_images(images, sizes)
    assert out[0, 0].tolist() == [[2.0, 1, 0, 3, 4], [7.0, 6, 5, 8, 9]]
    assert out[1, 0].tolist() == [[14.0, 13, 12, 11, 10], [19.0, 18, 17, 16, 15]]
    assert torch.equal(mirror_images(out, sizes), images)


def test_mirrored_candidates_join_before_nms():
    # one prior on the left of a 100-px-wide image; the mirrored pass sees its person on the right
    priors = torch.tensor([[10.0, 20, 30, 80], [70.0, 20, 90, 80]])
    sizes, scales = torch.tensor([[100, 100]]), torch.tensor([2.0])
    logits = torch.tensor([[[3.0], [-9.0]]])  # the plain pass finds prior 0 only
    mirrored = (torch.tensor([[[-9.0], [1.0]]]), torch.zeros(1, 2, 4))  # mirrored: prior 1
    plain = postprocess(logits, torch.zeros(1, 2, 4), priors, sizes, scales, nms="hard")[0]
    both = postprocess(
        logits, torch.zeros(1, 2, 4), priors, sizes, scales, nms="hard", mirrored=mirrored
    )[0]
    assert len(plain.scores) == 1
    # prior 1 mirrored in a 100-px image is x 10..30: the same box, suppressed by hard NMS
    assert len(both.scores) == 1 and torch.equal(both.boxes, plain.boxes)
    # with voting the duplicate still shapes the kept box; with a shifted duplicate it moves
    shifted = (mirrored[0], torch.tensor([[[0.0, 0, 0, 0], [-0.1, 0, 0, 0]]]))  # dx -2 px
    voted = postprocess(
        logits, torch.zeros(1, 2, 4), priors, sizes, scales, nms="hard", vote_iou=0.7,
        mirrored=shifted,
    )[0]  # fmt: skip
    s0, s1 = torch.sigmoid(torch.tensor(3.0)), torch.sigmoid(torch.tensor(1.0))
    # the mirrored box: x 68..88 in the mirrored image -> 12..32 here; in original pixels / 2
    x1 = (s0 * 10 + s1 * 12) / (s0 + s1) / 2
    torch.testing.assert_close(voted.boxes[0, 0], x1)
    # far apart, both survive
    far = postprocess(
        torch.tensor([[[3.0], [-9.0]]]), torch.zeros(1, 2, 4), priors, sizes, scales,
        nms="hard", mirrored=(torch.tensor([[[1.0], [-9.0]]]), torch.zeros(1, 2, 4)),
    )[0]  # fmt: skip
    assert sorted(far.boxes[:, 0].tolist()) == [5.0, 35.0]
