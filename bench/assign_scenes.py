"""Shared by the assignment benchmarks: a RetinaNet-R50-FPN-sized model and crowded batches.

The model is configs/crowdhuman/retinanet_r50_fpn.yaml when that file exists; otherwise the same
neck, head and anchors (FPN P3-P7 of 256 channels, a retina head of 4 convs of 256 channels,
9 anchors per place) on the tiny backbone (no ResNet in this tree): the assignment and the loss
see the same ~201k priors per 800 x 1344 image either way.
"""

from __future__ import annotations

import torch
from timing import REPO

R50 = REPO / "configs" / "crowdhuman" / "retinanet_r50_fpn.yaml"
TINY = REPO / "configs" / "tiny.yaml"
HEIGHT, WIDTH = 800, 1344  # 800 x 1333 padded to a multiple of 32
RETINA = [
    "model.neck.channels=256",
    "model.neck.levels=[3,4,5,6,7]",
    "model.head.convs=4",
    "model.head.channels=256",
    "model.anchors.base_scale=4.0",
    "model.anchors.octave_scales=[1.0,1.26,1.587]",
    "model.anchors.aspect_ratios=[0.5,1.0,2.0]",
]


def model_config(assign: str, extra: list[str] = ()):
    """(config, which file it came from) with assign.name=assign."""
    from crowdet.config import load_config

    if R50.exists():
        return load_config(R50, [f"assign.name={assign}", *extra]), str(R50.relative_to(REPO))
    overrides = [*RETINA, f"assign.name={assign}", *extra]
    return load_config(TINY, overrides), "configs/tiny.yaml + RetinaNet neck/head/anchors"


def crowd(num_images: int, people: int, seed: int = 0, regions: int = 5):
    """Targets (B, G + regions, 4) of people 8-200 px tall (height / width 2.44) spread over the
    image in clusters, plus a few ignore regions -> boxes, valid, ignore."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(num_images, 8, 2, generator=g) * torch.tensor([WIDTH, HEIGHT])
    pick = torch.randint(0, 8, (num_images, people), generator=g)
    xy = centre.gather(1, pick[..., None].expand(-1, -1, 2))
    xy = xy + torch.randn(num_images, people, 2, generator=g) * 150
    h = torch.rand(num_images, people, 1, generator=g) * 192 + 8
    wh = torch.cat([h / 2.44, h], -1)
    people_boxes = torch.cat([xy - wh / 2, xy + wh / 2], -1)
    r_xy = torch.rand(num_images, regions, 2, generator=g) * torch.tensor([WIDTH, HEIGHT])
    r_wh = torch.rand(num_images, regions, 2, generator=g) * 120 + 20
    region_boxes = torch.cat([r_xy - r_wh / 2, r_xy + r_wh / 2], -1)
    boxes = torch.cat([people_boxes, region_boxes], 1)
    valid = torch.ones(num_images, people + regions, dtype=torch.bool)
    ignore = torch.zeros_like(valid)
    ignore[:, people:] = True
    return boxes, valid, ignore


def batch_of(num_images: int, people: int, seed: int = 0):
    from crowdet.structures import Batch

    boxes, valid, ignore = crowd(num_images, people, seed)
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (num_images, 3, HEIGHT, WIDTH), generator=g, dtype=torch.uint8)
    sizes = torch.tensor([[HEIGHT, WIDTH]] * num_images)
    return Batch(images, sizes, boxes, valid, ignore, torch.ones(num_images), sizes)
