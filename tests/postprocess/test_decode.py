import torch
from torchvision.ops import nms

from crowdet.boxes import clip
from crowdet.models.coders import DeltaCoder
from crowdet.postprocess.decode import PassOutput
from crowdet.postprocess.decode import postprocess as run
from crowdet.structures import HeadOutput

CODER = DeltaCoder()


def postprocess(passes, scales, *args, **kwargs):
    """crowdet.postprocess.decode.postprocess with the anchor-delta coder."""
    return run(passes, scales, CODER, *args, **kwargs)


def one_pass(cls_logits, deltas, priors, sizes, *args, **kwargs) -> PassOutput:
    return PassOutput(HeadOutput(cls_logits, deltas), priors, sizes, *args, **kwargs)


def reference(cls_logits, deltas, priors, sizes, scales, thr, topk, iou, max_dets):
    """Slow, obvious: one image at a time, one class."""
    out = []
    for i in range(cls_logits.shape[0]):
        s = cls_logits[i, :, 0].sigmoid()
        top = s.topk(min(topk, len(s))).indices
        top = top[s[top] > thr]
        bx = CODER.decode(priors[top], deltas[i, top])
        h, w = sizes[i].tolist()
        bx = clip(bx, h, w)
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
    got = postprocess([one_pass(logits, deltas, priors, sizes)], scales, 0.2, 150, 0.5, 20)
    want = reference(logits, deltas, priors, sizes, scales, 0.2, 150, 0.5, 20)
    for det, (wb, ws) in zip(got, want):
        torch.testing.assert_close(det.scores, ws)
        torch.testing.assert_close(det.boxes, wb)
    assert any(len(d.scores) == 20 for d in got)  # the cap was reached somewhere


def test_no_candidates_gives_empty_detections():
    priors = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    sizes = torch.tensor([[20, 20], [20, 20]])
    dets = postprocess(
        [one_pass(torch.full((2, 1, 1), -10.0), torch.zeros(2, 1, 4), priors, sizes)],
        torch.ones(2),
    )
    assert [len(d.scores) for d in dets] == [0, 0]


def test_mirrored_candidates_join_before_nms():
    # one prior on the left of a 100-px-wide image; the mirrored pass sees its person on the right
    priors = torch.tensor([[10.0, 20, 30, 80], [70.0, 20, 90, 80]])
    sizes, scales = torch.tensor([[100, 100]]), torch.tensor([2.0])
    zero = torch.zeros(1, 2, 4)
    plain_pass = one_pass(torch.tensor([[[3.0], [-9.0]]]), zero, priors, sizes)  # prior 0 only
    mirrored = one_pass(torch.tensor([[[-9.0], [1.0]]]), zero, priors, sizes, mirrored=True)
    plain = postprocess([plain_pass], scales, nms="hard")[0]
    both = postprocess([plain_pass, mirrored], scales, nms="hard")[0]
    assert len(plain.scores) == 1
    # prior 1 mirrored in a 100-px image is x 10..30: the same box, suppressed by hard NMS
    assert len(both.scores) == 1 and torch.equal(both.boxes, plain.boxes)
    # with voting the duplicate still shapes the kept box; with a shifted duplicate it moves
    shifted = one_pass(
        mirrored.outputs.cls_logits,
        torch.tensor([[[0.0, 0, 0, 0], [-0.1, 0, 0, 0]]]),
        priors,
        sizes,
        mirrored=True,
    )  # fmt: skip  (dx -2 px)
    voted = postprocess([plain_pass, shifted], scales, nms="hard", vote_iou=0.7)[0]
    s0, s1 = torch.sigmoid(torch.tensor(3.0)), torch.sigmoid(torch.tensor(1.0))
    # the mirrored box: x 68..88 in the mirrored image -> 12..32 here; in original pixels / 2
    x1 = (s0 * 10 + s1 * 12) / (s0 + s1) / 2
    torch.testing.assert_close(voted.boxes[0, 0], x1)
    # far apart, both survive
    far_pass = one_pass(torch.tensor([[[1.0], [-9.0]]]), zero, priors, sizes, mirrored=True)
    far = postprocess([plain_pass, far_pass], scales, nms="hard")[0]
    assert sorted(far.boxes[:, 0].tolist()) == [5.0, 35.0]


def test_resized_candidates_map_back_to_the_input():
    # a pass on the input enlarged 1.5x (then mirrored) finds a box at 1.5x its input position
    priors = torch.tensor([[15.0, 30, 45, 120], [90.0, 30, 120, 120]])
    sizes, scales = torch.tensor([[100, 80]]), torch.tensor([0.5])
    zero = torch.zeros(1, 2, 4)
    logits = torch.tensor([[[2.0], [-9.0]]])
    big = one_pass(logits, zero, priors, sizes * 1.5, (1.5, 1.5))
    det = postprocess([big], scales, nms="hard")[0]
    torch.testing.assert_close(det.boxes, torch.tensor([[20.0, 40, 60, 160]]))  # / 1.5 / 0.5
    mirrored = one_pass(logits, zero, priors, sizes * 1.5, (1.5, 1.5), mirrored=True)
    det = postprocess([mirrored], scales, nms="hard")[0]
    # x 15..45 in the 120-px-wide mirrored input -> 75..105 -> 50..70 in the input -> 100..140
    torch.testing.assert_close(det.boxes, torch.tensor([[100.0, 40, 140, 160]]))
    # unequal factors (fy, fx) apply per axis
    tall = one_pass(logits, zero, priors, torch.tensor([[200, 120]]), (2.0, 1.5))
    det = postprocess([tall], scales, nms="hard")[0]
    torch.testing.assert_close(det.boxes, torch.tensor([[20.0, 30, 60, 120]]))
