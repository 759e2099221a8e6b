"""Build a detector from a config: one plain name table per component kind.

A model component's table maps a name to (config model, builder): the config model validates
the `model.<kind>` section that names it (crowdet.config_base.by_name) and the builder takes
that validated section, then what the component is built on:
    BACKBONES  builder(cfg) -> module with out_channels, out_strides
    NECKS      builder(cfg, in_channels, in_strides) -> module with out_channels, out_strides
    HEADS      builder(cfg, in_channels, strides, num_classes, anchors: AnchorConfig)
               -> crowdet.models.heads.base.DenseHead
A builder's FieldError (a setting its inputs cannot honour) names the section's key.
"""

from __future__ import annotations

from functools import partial

import torch

from crowdet.assign.atss import ATSSAssigner
from crowdet.assign.max_iou import MaxIoUAssigner
from crowdet.config import AssignConfigBase, ATSSAssignConfig, Config, MaxIoUAssignConfig
from crowdet.config_base import FieldError, Variant, unknown_name
from crowdet.errors import ConfigError
from crowdet.losses.dense import DenseLoss
from crowdet.models.backbones.cspdarknet import CSPDarknet, CSPDarknetConfig
from crowdet.models.backbones.darknet import Darknet53, Darknet53Config
from crowdet.models.backbones.resnet import ResNet, ResNetConfig
from crowdet.models.backbones.tiny import TinyBackbone, TinyBackboneConfig
from crowdet.models.detector import DenseDetector
from crowdet.models.heads.retina import RetinaHead, RetinaHeadConfig
from crowdet.models.necks.fpn import FPN, FPNConfig
from crowdet.models.necks.pafpn import PAFPN, PAFPNConfig
from crowdet.models.necks.yolov3 import YOLOv3Neck, YOLOv3NeckConfig
from crowdet.models.preprocess import InputNorm
from crowdet.postprocess.decode import postprocess
from crowdet.structures import Assigner

BACKBONES = {
    "tiny": (TinyBackboneConfig, TinyBackbone.from_config),
    "resnet": (ResNetConfig, ResNet.from_config),
    "darknet53": (Darknet53Config, Darknet53.from_config),
    "cspdarknet": (CSPDarknetConfig, CSPDarknet.from_config),
}
NECKS = {
    "fpn": (FPNConfig, FPN.from_config),
    "yolov3": (YOLOv3NeckConfig, YOLOv3Neck.from_config),
    "pafpn": (PAFPNConfig, PAFPN.from_config),
}
HEADS = {"retina": (RetinaHeadConfig, RetinaHead.from_config)}


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
    raise ConfigError(f"{key}: {unknown_name(name, table)}")


def _build(table: dict, section: Variant, key: str, *inputs):
    """The component `section` (a validated variant config) names, built on `inputs`."""
    _, builder = lookup(table, section.name, f"{key}.name")
    try:
        return builder(section, *inputs)
    except FieldError as e:  # e.g. neck levels this backbone cannot feed
        raise ConfigError(f"{key}.{e.key}: {e}") from None


def build_detector(cfg: Config) -> DenseDetector:
    m = cfg.model
    backbone = _build(BACKBONES, m.backbone, "model.backbone")
    neck = _build(NECKS, m.neck, "model.neck", backbone.out_channels, backbone.out_strides)
    head = _build(
        HEADS, m.head, "model.head", neck.out_channels, neck.out_strides, m.num_classes, m.anchors
    )
    detector = DenseDetector(
        backbone,
        neck,
        head,
        build_loss(cfg),
        build_postprocess(cfg),
        channels_last=m.channels_last,
        flip_test=cfg.postprocess.flip_test,
        test_scales=cfg.postprocess.test_scales,
        size_divisor=cfg.data.size_divisor,
        input_norm=InputNorm(m.pixel_mean, m.pixel_std, rgb=getattr(backbone, "input_rgb", False)),
    )
    return detector.to(memory_format=torch.channels_last) if m.channels_last else detector


def build_assigner(assign: AssignConfigBase) -> Assigner:
    """The assigner of a config's assign section (the model its name picks in ASSIGNERS)."""
    return _build(ASSIGNERS, assign, "assign")


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
