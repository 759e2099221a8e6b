"""Build a detector from a config: one plain name table per component kind."""

from __future__ import annotations

import difflib
from functools import partial

import torch

from crowdet.assign.atss import ATSSAssigner
from crowdet.assign.max_iou import MaxIoUAssigner
from crowdet.config import AssignConfigBase, ATSSAssignConfig, Config, MaxIoUAssignConfig
from crowdet.errors import ConfigError
from crowdet.losses.dense import DenseLoss
from crowdet.models.anchors import AnchorGenerator
from crowdet.models.backbones.tiny import TinyBackbone
from crowdet.models.detector import DenseDetector
from crowdet.models.heads.retina import RetinaHead
from crowdet.models.necks.fpn import FPN
from crowdet.postprocess.decode import postprocess
from crowdet.structures import Assigner

BACKBONES = {"tiny": TinyBackbone}
NECKS = {"fpn": FPN}
HEADS = {"retina": RetinaHead}


def _max_iou(a: MaxIoUAssignConfig) -> MaxIoUAssigner:
    return MaxIoUAssigner(
        pos_iou=a.pos_iou,
        neg_iou=a.neg_iou,
        ignore_ioa=a.ignore_ioa,
        low_quality=a.low_quality,
        max_elements=a.max_elements,
    )


def _atss(a: ATSSAssignConfig) -> ATSSAssigner:
    return ATSSAssigner(
        topk=a.topk, ignore_ioa=a.ignore_ioa, low_quality=a.low_quality, max_elements=a.max_elements
    )


# assign.name -> (its config model, the builder of the assigner from that model); the config
# accepts exactly these names (crowdet.config.AssignConfig)
ASSIGNERS = {
    "max_iou": (MaxIoUAssignConfig, _max_iou),
    "atss": (ATSSAssignConfig, _atss),
}


def lookup(table: dict, name: str, key: str):
    """table[name], or a ConfigError naming the key, the valid names and the closest one."""
    if name in table:
        return table[name]
    close = difflib.get_close_matches(name, list(table), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise ConfigError(f"{key}: unknown name '{name}'{hint} (valid: {', '.join(sorted(table))})")


def build_detector(cfg: Config) -> DenseDetector:
    m = cfg.model
    bb = m.backbone
    backbone = lookup(BACKBONES, bb.name, "model.backbone.name")(
        width=bb.width, depth=bb.depth, frozen_stages=bb.frozen_stages
    )
    try:
        neck = lookup(NECKS, m.neck.name, "model.neck.name")(
            backbone.out_channels, backbone.out_strides, m.neck.channels, m.neck.levels
        )
    except ValueError as e:  # levels this backbone cannot feed
        raise ConfigError(f"model.neck.levels: {e}") from None
    anchors = AnchorGenerator(
        neck.out_strides, m.anchors.base_scale, m.anchors.octave_scales, m.anchors.aspect_ratios
    )
    head = lookup(HEADS, m.head.name, "model.head.name")(
        neck.out_channels,
        anchors.num_anchors,
        num_classes=m.num_classes,
        num_levels=len(neck.out_strides),
        convs=m.head.convs,
        channels=m.head.channels,
        prior_prob=m.head.prior_prob,
        norm=m.head.norm,
    )
    detector = DenseDetector(
        backbone,
        neck,
        head,
        anchors,
        build_loss(cfg),
        build_postprocess(cfg),
        channels_last=m.channels_last,
        flip_test=cfg.postprocess.flip_test,
        test_scales=cfg.postprocess.test_scales,
        size_divisor=cfg.data.size_divisor,
    )
    return detector.to(memory_format=torch.channels_last) if m.channels_last else detector


def build_assigner(assign: AssignConfigBase) -> Assigner:
    """The assigner of a config's assign section (the model its name picks in ASSIGNERS)."""
    return lookup(ASSIGNERS, assign.name, "assign.name")[1](assign)


def build_loss(cfg: Config, num_pos_reducer=None) -> DenseLoss:
    lc = cfg.loss
    return DenseLoss(
        build_assigner(cfg.assign),
        cls=lc.cls,
        focal_alpha=lc.focal_alpha,
        focal_gamma=lc.focal_gamma,
        box=lc.box,
        box_weight=lc.box_weight,
        smooth_l1_beta=lc.smooth_l1_beta,
        num_pos_reducer=num_pos_reducer,
    )


def build_postprocess(cfg: Config):
    p = cfg.postprocess
    return partial(
        postprocess,
        score_threshold=p.score_threshold,
        pre_nms_topk=p.pre_nms_topk,
        iou_threshold=p.iou_threshold,
        max_dets=p.max_dets,
        nms=p.nms,
        soft_sigma=p.soft_sigma,
        vote_iou=p.vote_iou,
    )
