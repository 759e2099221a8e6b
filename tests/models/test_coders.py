"""Box coders: the anchor-delta coder against torchvision's BoxCoder, the point-distance coder on
hand-made boxes, and both inverse of each other."""

import re
from pathlib import Path

import torch
from torchvision.models.detection._utils import BoxCoder

from crowdet.models.coders import DeltaCoder, PointDistanceCoder


def random_boxes(n: int, g: torch.Generator) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=g) * 200
    return torch.cat([xy, xy + 4 + torch.rand(n, 2, generator=g) * 100], dim=1)


def test_delta_coder_matches_torchvision_box_coder():
    g = torch.Generator().manual_seed(0)
    priors, boxes = random_boxes(50, g), random_boxes(50, g)
    weights = (10.0, 10.0, 5.0, 5.0)
    ours, theirs = DeltaCoder(weights), BoxCoder(weights)
    deltas = ours.encode(priors, boxes)
    torch.testing.assert_close(deltas, theirs.encode_single(boxes, priors))
    noisy = deltas + torch.randn(50, 4, generator=g)
    torch.testing.assert_close(ours.decode(priors, noisy), theirs.decode_single(noisy, priors))
    torch.testing.assert_close(ours.decode(priors, deltas), boxes, rtol=1e-5, atol=1e-3)


def test_point_distance_coder_hand_computed():
    coder = PointDistanceCoder()
    priors = torch.tensor([[0.0, 0, 8, 8], [16.0, 16, 32, 32]])  # points (4, 4) and (24, 24)
    boxes = torch.tensor([[0.0, 2, 12, 10], [20.0, 8, 40, 28]])
    # (4 - 0, 4 - 2, 12 - 4, 10 - 4) / 8 and (24 - 20, 24 - 8, 40 - 24, 28 - 24) / 16
    expected = torch.tensor([[0.5, 0.25, 1.0, 0.75], [0.25, 1.0, 1.0, 0.25]])
    torch.testing.assert_close(coder.encode(priors, boxes), expected)
    torch.testing.assert_close(coder.decode(priors, expected), boxes)
    g = torch.Generator().manual_seed(1)
    distances = torch.rand(2, 3, 4, generator=g) * 5  # batched (..., 4)
    points = priors.expand(2, 3, 2, 4)[:, :, 0]
    torch.testing.assert_close(coder.encode(points, coder.decode(points, distances)), distances)


def test_only_the_coders_call_the_box_encoding():
    """The loss and the post-processing reach boxes through a head's coder."""
    root = Path(__file__).resolve().parents[2] / "crowdet"
    call = re.compile(r"\b(?:B|boxes|box_ops)\.(?:en|de)code\(|from crowdet\.boxes import .*code")
    callers = [
        p.relative_to(root).as_posix() for p in root.rglob("*.py") if call.search(p.read_text())
    ]
    assert callers == ["models/coders.py"]
