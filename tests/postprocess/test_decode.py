import torch
from torchvision.ops import nms

from crowdet import boxes as B
from crowdet.postprocess.decode import PassOutput, mirror_images, postprocess, resize_images


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
    got = postprocess([PassOutput(logits, deltas, priors, sizes)], scales, 0.2, 150, 0.5, 20)
    want = reference(logits, deltas, priors, sizes, scales, 0.2, 150, 0.5, 20)
    for det, (wb, ws) in zip(got, want):
        torch.testing.assert_close(det.scores, ws)
        torch.testing.assert_close(det.boxes, wb)
    assert any(len(d.scores) == 20 for d in got)  # the cap was reached somewhere


def test_no_candidates_gives_empty_detections():
    priors = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    sizes = torch.tensor([[20, 20], [20, 20]])
    dets = postprocess(
        [PassOutput(torch.full((2, 1, 1), -10.0), torch.zeros(2, 1, 4), priors, sizes)],
        torch.ones(2),
    )
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
    zero = torch.zeros(1, 2, 4)
    plain_pass = PassOutput(torch.tensor([[[3.0], [-9.0]]]), zero, priors, sizes)  # prior 0 only
    mirrored = PassOutput(torch.tensor([[[-9.0], [1.0]]]), zero, priors, sizes, mirrored=True)
    plain = postprocess([plain_pass], scales, nms="hard")[0]
    both = postprocess([plain_pass, mirrored], scales, nms="hard")[0]
    assert len(plain.scores) == 1
    # prior 1 mirrored in a 100-px image is x 10..30: the same box, suppressed by hard NMS
    assert len(both.scores) == 1 and torch.equal(both.boxes, plain.boxes)
    # with voting the duplicate still shapes the kept box; with a shifted duplicate it moves
    shifted = PassOutput(
        mirrored.cls_logits,
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
    far_pass = PassOutput(torch.tensor([[[1.0], [-9.0]]]), zero, priors, sizes, mirrored=True)
    far = postprocess([plain_pass, far_pass], scales, nms="hard")[0]
    assert sorted(far.boxes[:, 0].tolist()) == [5.0, 35.0]


def test_resized_candidates_map_back_to_the_input():
    # a pass on the input enlarged 1.5x (then mirrored) finds a box at 1.5x its input position
    priors = torch.tensor([[15.0, 30, 45, 120], [90.0, 30, 120, 120]])
    sizes, scales = torch.tensor([[100, 80]]), torch.tensor([0.5])
    zero = torch.zeros(1, 2, 4)
    big = PassOutput(torch.tensor([[[2.0], [-9.0]]]), zero, priors, sizes * 1.5, (1.5, 1.5))
    det = postprocess([big], scales, nms="hard")[0]
    torch.testing.assert_close(det.boxes, torch.tensor([[20.0, 40, 60, 160]]))  # / 1.5 / 0.5
    mirrored = PassOutput(big.cls_logits, zero, priors, sizes * 1.5, (1.5, 1.5), mirrored=True)
    det = postprocess([mirrored], scales, nms="hard")[0]
    # x 15..45 in the 120-px-wide mirrored input -> 75..105 -> 50..70 in the input -> 100..140
    torch.testing.assert_close(det.boxes, torch.tensor([[100.0, 40, 140, 160]]))
    # unequal factors (fy, fx) apply per axis
    tall = PassOutput(big.cls_logits, zero, priors, torch.tensor([[200, 120]]), (2.0, 1.5))
    det = postprocess([tall], scales, nms="hard")[0]
    torch.testing.assert_close(det.boxes, torch.tensor([[20.0, 30, 60, 120]]))


def test_resize_images_keeps_the_content_and_pads():
    images = torch.zeros(2, 1, 64, 96)
    images[0, :, :40, :60] = 1.0  # image 0: 40 x 60 of content, the rest padding
    images[1] = 2.0
    sizes = torch.tensor([[40, 60], [64, 96]])
    out, new_sizes, (fy, fx) = resize_images(images, sizes, 1.5, size_divisor=32)
    assert out.shape == (2, 1, 96, 160) and (fy, fx) == (1.5, 1.5)  # 144 padded to 160
    assert new_sizes.tolist() == [[60, 90], [96, 144]]
    torch.testing.assert_close(out[0, :, :59, :89], torch.ones(1, 59, 89))
    assert torch.all(out[0, :, 61:, 91:] == 0.0)
    torch.testing.assert_close(out[1, :, :, :144], torch.full((1, 96, 144), 2.0))
    assert torch.all(out[1, :, :, 144:] == 0.0)
    same, same_sizes, factors = resize_images(images, sizes, 1.0)
    assert same is images and same_sizes is sizes and factors == (1.0, 1.0)
    small, small_sizes, (fy, fx) = resize_images(images, sizes, 0.7)
    assert small_sizes.tolist() == [[28, 42], [45, 67]] and (fy, fx) == (45 / 64, 67 / 96)
