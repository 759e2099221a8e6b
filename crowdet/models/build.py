"""Build a detector from a config: one plain name table per component kind.

A model component's table maps a name to (config model, builder): the config model validates
the `model.<kind>` section that names it (crowdet.config_base.by_name) and the builder takes
that validated section, then what the component is built on:
    BACKBONES  builder(cfg) -> module with out_channels, out_strides
    NECKS      builder(cfg, in_channels, in_strides) -> module with out_channels, out_strides
    HEADS      builder(cfg, in_channels, strides, num_classes, anchors: AnchorConfig)
               -> crowdet.models.heads.base.DenseHead
The assigners' table ASSIGNERS maps `assign.name` the same way; LOSSES maps a head's name to the
builder of its loss, builder(cfg, assigner, num_pos_reducer) (a head without a row trains with
DenseLoss, the RetinaNet / ATSS loss).
A builder's FieldError (a setting its inputs cannot honour) names the section's key.
"""

from __future__ import annotations

from functools import partial

import torch

from crowdet.assign.atss import ATSSAssigner
from crowdet.assign.fcos import FCOSAssigner
from crowdet.assign.max_iou import MaxIoUAssigner
from crowdet.assign.ota import OTAAssigner
from crowdet.assign.simota import SimOTAAssigner
from crowdet.assign.yolov3 import YOLOv3Assigner
from crowdet.config import (
    AssignConfigBase,
    ATSSAssignConfig,
    Config,
    FCOSAssignConfig,
    FreeAnchorAssignConfig,
    MaxIoUAssignConfig,
    OTAAssignConfig,
    SimOTAAssignConfig,
    YOLOv3AssignConfig,
)
from crowdet.config_base import FieldError, Variant, unknown_name
from crowdet.errors import ConfigError
from crowdet.losses.box import IOU_LOSSES
from crowdet.losses.dense import DenseLoss
from crowdet.losses.emd import EMDLoss
from crowdet.losses.fcos import FCOSLoss
from crowdet.losses.free_anchor import FreeAnchorLoss
from crowdet.losses.repulsion import RepulsionLoss
from crowdet.losses.yolov3 import YOLOv3Loss
from crowdet.losses.yolox import YOLOXLoss
from crowdet.models.backbones.cspdarknet import CSPDarknet, CSPDarknetConfig
from crowdet.models.backbones.darknet import Darknet53, Darknet53Config
from crowdet.models.backbones.resnet import (
    ResNet,
    ResNet18Config,
    ResNet34Config,
    ResNet50Config,
    ResNet101Config,
    ResNetConfig,
)
from crowdet.models.backbones.tiny import TinyBackbone, TinyBackboneConfig
from crowdet.models.coders import DeltaCoder
from crowdet.models.detector import DenseDetector
from crowdet.models.heads.fcos import FCOSHead, FCOSHeadConfig
from crowdet.models.heads.retina import RetinaHead, RetinaHeadConfig
from crowdet.models.heads.yolov3 import YOLOv3Head, YOLOv3HeadConfig
from crowdet.models.heads.yolox import YOLOXHead, YOLOXHeadConfig
from crowdet.models.necks.fpn import FPN, FPNConfig
from crowdet.models.necks.pafpn import PAFPN, PAFPNConfig
from crowdet.models.necks.yolov3 import YOLOv3Neck, YOLOv3NeckConfig
from crowdet.models.preprocess import InputNorm
from crowdet.postprocess.decode import postprocess
from crowdet.postprocess.suppress import check_method
from crowdet.structures import Assigner

BACKBONES = {
    "tiny": (TinyBackboneConfig, TinyBackbone.from_config),
    "resnet": (ResNetConfig, ResNet.from_config),
    "resnet18": (ResNet18Config, ResNet.from_config),
    "resnet34": (ResNet34Config, ResNet.from_config),
    "resnet50": (ResNet50Config, ResNet.from_config),
    "resnet101": (ResNet101Config, ResNet.from_config),
    "darknet53": (Darknet53Config, Darknet53.from_config),
    "cspdarknet": (CSPDarknetConfig, CSPDarknet.from_config),
}
NECKS = {
    "fpn": (FPNConfig, FPN.from_config),
    "yolov3": (YOLOv3NeckConfig, YOLOv3Neck.from_config),
    "pafpn": (PAFPNConfig, PAFPN.from_config),
}
HEADS = {
    "retina": (RetinaHeadConfig, RetinaHead.from_config),
    "fcos": (FCOSHeadConfig, FCOSHead.from_config),
    "yolov3": (YOLOv3HeadConfig, YOLOv3Head.from_config),
    "yolox": (YOLOXHeadConfig, YOLOXHead.from_config),
}


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


def _fcos(a: FCOSAssignConfig) -> FCOSAssigner:
    return FCOSAssigner(
        radius=a.radius,
        scale_bounds=a.scale_bounds,
        ignore_ioa=a.ignore_ioa,
        low_quality=a.low_quality,
        max_elements=a.max_elements,
    )


def _yolov3(a: YOLOv3AssignConfig) -> YOLOv3Assigner:
    return YOLOv3Assigner(
        ignore_iou=a.ignore_iou,
        ignore_ioa=a.ignore_ioa,
        low_quality=a.low_quality,
        max_elements=a.max_elements,
    )


def _simota(a: SimOTAAssignConfig) -> SimOTAAssigner:
    return SimOTAAssigner(
        center_radius=a.center_radius,
        candidate_topk=a.candidate_topk,
        iou_weight=a.iou_weight,
        ignore_ioa=a.ignore_ioa,
        low_quality=a.low_quality,
        max_elements=a.max_elements,
    )


def _ota(a: OTAAssignConfig) -> OTAAssigner:
    return OTAAssigner(
        candidates=a.candidates,
        dynamic_q=a.dynamic_q,
        eps=a.eps,
        iters=a.iters,
        cls_weight=a.cls_weight,
        iou_weight=a.iou_weight,
        center_weight=a.center_weight,
        outside_cost=a.outside_cost,
        ignore_ioa=a.ignore_ioa,
        max_elements=a.max_elements,
    )


def _free_anchor(a: FreeAnchorAssignConfig) -> FreeAnchorLoss:
    return FreeAnchorLoss(
        bag_size=a.bag_size,
        iou_low=a.iou_low,
        focal_alpha=a.focal_alpha,
        focal_gamma=a.focal_gamma,
        box_weight=a.box_weight,
        smooth_l1_beta=a.smooth_l1_beta,
        ignore_ioa=a.ignore_ioa,
        max_elements=a.max_elements,
        delta_coder=DeltaCoder(a.delta_weights),
    )


# assign.name -> (its config model, the builder of the assigner from that model); the config
# accepts exactly these names (crowdet.config.AssignConfig). FreeAnchor learns from bags of
# anchors instead of a hard assignment: its entry builds the whole loss (build_loss).
ASSIGNERS = {
    "max_iou": (MaxIoUAssignConfig, _max_iou),
    "atss": (ATSSAssignConfig, _atss),
    "fcos": (FCOSAssignConfig, _fcos),
    "yolov3": (YOLOv3AssignConfig, _yolov3),
    "simota": (SimOTAAssignConfig, _simota),
    "ota": (OTAAssignConfig, _ota),
    "freeanchor": (FreeAnchorAssignConfig, _free_anchor),
}
WHOLE_LOSSES = {"freeanchor"}  # the ASSIGNERS entries that build a whole loss, not an assigner


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
    _check_scale_bounds(cfg.assign, len(neck.out_strides))
    check_crowd_extras(head, cfg)
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


def _check_scale_bounds(assign: AssignConfigBase, num_levels: int) -> None:
    """ConfigError unless the FCOS assigner's scale bounds fit the neck's levels."""
    bounds = getattr(assign, "scale_bounds", None)
    if bounds is not None and len(bounds) != num_levels - 1:
        raise ConfigError(
            f"assign.scale_bounds: {len(bounds)} bounds for {num_levels} pyramid levels; give "
            f"one fewer than the levels (the bounds between consecutive levels)"
        )


def build_assigner(assign: AssignConfigBase) -> Assigner:
    """The assigner of a config's assign section (the model its name picks in ASSIGNERS)."""
    return _build(ASSIGNERS, assign, "assign")


def check_crowd_extras(head, cfg: Config) -> None:
    """ConfigError naming the key when the head's extras do not fit postprocess.nms or eval.box."""
    if cfg.scores_visible() and not head.visible:
        raise ConfigError(
            f"eval.box: visible scores visible boxes, and this model (trained on data.box: "
            f"{cfg.data.box}) predicts none: set model.head.visible: true (full + visible "
            "output) or train with data.box: visible"
        )
    if head.instances > 1 and (head.visible or head.density):
        raise ConfigError(
            "model.head.instances: several instances per prior train with the EMD loss, which "
            "has no visible or density term; set model.head.visible and model.head.density false"
        )
    check_method(cfg.postprocess.nms, head.visible, head.density, head.instances)


def _dense_loss(cfg: Config, assigner: Assigner, num_pos_reducer) -> DenseLoss | EMDLoss:
    lc = cfg.loss
    instances = getattr(cfg.model.head, "instances", 1)
    if instances > 1:
        if lc.box not in ("giou", "diou", "ciou"):
            raise ConfigError(
                f"loss.box: model.head.instances > 1 (EMD loss) needs an IoU loss, got {lc.box!r}"
            )
        return EMDLoss(
            assigner,
            instances=instances,
            pos_iou=getattr(cfg.assign, "pos_iou", 0.5),
            focal_alpha=lc.focal_alpha,
            focal_gamma=lc.focal_gamma,
            box=lc.box,
            box_weight=lc.box_weight,
            num_pos_reducer=num_pos_reducer,
        )
    repulsion = None
    if lc.rep_gt or lc.rep_box:
        repulsion = RepulsionLoss(lc.rep_gt, lc.rep_box, lc.rep_sigma_gt, lc.rep_sigma_box)
    return DenseLoss(
        assigner,
        cls=lc.cls,
        focal_alpha=lc.focal_alpha,
        focal_gamma=lc.focal_gamma,
        box=lc.box,
        box_weight=lc.box_weight,
        smooth_l1_beta=lc.smooth_l1_beta,
        num_pos_reducer=num_pos_reducer,
        repulsion=repulsion,
    )


def _only(cfg: Config, head: str, **allowed) -> None:
    """ConfigError naming a loss key whose value the head's loss does not support."""
    for key, values in allowed.items():
        value = getattr(cfg.loss, key)
        if value not in values:
            raise ConfigError(f"loss.{key}: the {head} head's loss takes {values}, got {value!r}")


def _fcos_loss(cfg: Config, assigner: Assigner, num_pos_reducer) -> FCOSLoss:
    _only(cfg, "fcos", cls=("focal",), box=tuple(IOU_LOSSES))
    lc = cfg.loss
    return FCOSLoss(
        assigner,
        focal_alpha=lc.focal_alpha,
        focal_gamma=lc.focal_gamma,
        box=lc.box,
        box_weight=lc.box_weight,
        quality_weight=lc.obj_weight,
        num_pos_reducer=num_pos_reducer,
    )


def _yolov3_loss(cfg: Config, assigner: Assigner, num_pos_reducer) -> YOLOv3Loss:
    lc = cfg.loss
    return YOLOv3Loss(
        assigner,
        box_weight=lc.box_weight,
        obj_weight=lc.obj_weight,
        num_pos_reducer=num_pos_reducer,
    )


def _yolox_loss(cfg: Config, assigner: Assigner, num_pos_reducer) -> YOLOXLoss:
    _only(cfg, "yolox", box=tuple(IOU_LOSSES))
    lc = cfg.loss
    return YOLOXLoss(
        assigner,
        box=lc.box,
        box_weight=lc.box_weight,
        obj_weight=lc.obj_weight,
        l1_last_iters=lc.l1_last_iters,
        num_pos_reducer=num_pos_reducer,
    )


# model.head.name -> the builder of its loss, builder(cfg, assigner, num_pos_reducer); a head
# without a row (RetinaNet-style heads) trains with DenseLoss
LOSSES = {"fcos": _fcos_loss, "yolov3": _yolov3_loss, "yolox": _yolox_loss}


def build_loss(cfg: Config, num_pos_reducer=None):
    """The loss of the config's head (LOSSES, else DenseLoss) with the config's assigner; an
    assign entry of WHOLE_LOSSES (FreeAnchor) is the loss itself."""
    assigner = build_assigner(cfg.assign)
    if cfg.assign.name in WHOLE_LOSSES:
        head = cfg.model.head.name
        if head in LOSSES or getattr(cfg.model.head, "instances", 1) > 1:
            raise ConfigError(
                f"assign.name: {cfg.assign.name} is a loss of the retina head's anchors; "
                f"model.head {head!r} with its options trains with its own loss"
            )
        if cfg.loss.rep_gt or cfg.loss.rep_box:
            raise ConfigError("loss.rep_gt / loss.rep_box need a hard assignment, not freeanchor")
        assigner.num_pos_reducer = num_pos_reducer
        return assigner
    builder = LOSSES.get(cfg.model.head.name, _dense_loss)
    return builder(cfg, assigner, num_pos_reducer)


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
        soft_method=p.soft_method,
        instances=getattr(cfg.model.head, "instances", 1),
    )
