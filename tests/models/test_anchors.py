import torch

from crowdet.models.anchors import AnchorGenerator
from crowdet.models.heads.retina import RetinaHead


def test_anchor_geometry_hand_computed():
    gen = AnchorGenerator([8], base_scale=3.0, octave_scales=[1.0, 2.0], aspect_ratios=[2.0])
    priors = gen([(1, 2)])
    # location (0,0): centre (4, 4); heights 3*8*1 = 24 and 3*8*2 = 48, widths h / 2
    expected = torch.tensor(
        [
            [4 - 6, 4 - 12, 4 + 6, 4 + 12],
            [4 - 12, 4 - 24, 4 + 12, 4 + 24],
            [12 - 6, 4 - 12, 12 + 6, 4 + 12],
            [12 - 12, 4 - 24, 12 + 12, 4 + 24],
        ],
        dtype=torch.float32,
    )
    torch.testing.assert_close(priors.boxes, expected)
    assert priors.strides.tolist() == [8.0] * 4 and priors.level_sizes == [4]
    assert gen.num_priors([(1, 2)]) == 4


class PassThrough(torch.nn.Module):
    def forward(self, x, level):
        return x


def test_head_flatten_order_matches_priors():
    """Output row a of the head must belong to prior a: level, y, x, anchor."""
    gen = AnchorGenerator([8, 16], 3.0, [1.0, 1.5], [2.44])
    c = 4 * gen.num_anchors
    head = RetinaHead(
        c, gen, num_classes=1, convs=0, channels=c, prior_prob=0.01, norm="gn",
        visible=False, density=False, instances=1,
    )  # fmt: skip
    # make the box output equal to the input location: channel k*4 + j carries (level, y, x, k)
    head.box_out = torch.nn.Identity()
    feats = []
    for level, (h, w) in enumerate([(3, 4), (2, 2)]):
        y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        k = gen.num_anchors
        planes = []
        for a in range(k):
            planes += [
                torch.full((h, w), float(level)),
                y.float(),
                x.float(),
                torch.full((h, w), a),
            ]
        feats.append(torch.stack(planes)[None].float())
    head.box_tower = PassThrough()
    head.reduce = torch.nn.Identity()
    box = head(feats).box_regression
    assert head.priors([(3, 4), (2, 2)]) is gen([(3, 4), (2, 2)])
    priors = gen([(3, 4), (2, 2)]).boxes
    strides = torch.tensor([8.0, 16.0])[box[0, :, 0].long()]
    cx = (box[0, :, 2] + 0.5) * strides
    cy = (box[0, :, 1] + 0.5) * strides
    torch.testing.assert_close(cx, (priors[:, 0] + priors[:, 2]) / 2)
    torch.testing.assert_close(cy, (priors[:, 1] + priors[:, 3]) / 2)
    heights = 3.0 * strides * torch.tensor([1.0, 1.5])[box[0, :, 3].long()]
    torch.testing.assert_close(heights, priors[:, 3] - priors[:, 1])
