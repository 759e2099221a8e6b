"""The assigner sections of the config: `assign.name` picks one of these models (the rows of
crowdet.models.build.ASSIGNERS), each with the keys of its assigner; crowdet.config uses them
through `AssignConfig`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from crowdet.config_base import FieldError, Fraction, Positive, Variant


class AssignConfigBase(Variant):
    """The keys of every assigner; `name` picks the assigner (crowdet.models.build.ASSIGNERS)."""

    name: str
    # priors covered more than this by an ignore region are not negatives (1 = never)
    ignore_ioa: Fraction = 0.5
    max_elements: int = Field(2**20, ge=1)  # (image, target, prior) entries per block (memory)


class MaxIoUAssignConfig(AssignConfigBase):  # crowdet.assign.max_iou
    name: Literal["max_iou"] = "max_iou"
    pos_iou: float = Field(0.5, gt=0.0, le=1.0)  # IoU at or above which a prior is positive
    neg_iou: float = Field(0.4, gt=0.0, le=1.0)  # IoU below which a prior is negative
    low_quality: bool = True  # every person gets at least one positive prior

    @model_validator(mode="after")
    def _neg_below_pos(self):
        if self.neg_iou > self.pos_iou:
            raise FieldError(
                "neg_iou", f"must be <= assign.pos_iou={self.pos_iou}, got {self.neg_iou}"
            )
        return self


class ATSSAssignConfig(AssignConfigBase):  # crowdet.assign.atss
    name: Literal["atss"] = "atss"
    topk: int = Field(9, ge=1)  # candidate priors per person and pyramid level
    low_quality: bool = True  # every person gets at least one positive prior


class FCOSAssignConfig(AssignConfigBase):  # crowdet.assign.fcos
    name: Literal["fcos"] = "fcos"
    radius: float = Field(1.5, ge=0.0)  # centre sampling radius in strides (0: the whole box)
    # object-size bounds (pixels) between consecutive pyramid levels, one fewer than the levels;
    # null: 8 x the stride of the lower level (FCOS's 64, 128, 256, 512 on P3-P7)
    scale_bounds: list[Positive] | None = None
    low_quality: bool = True  # every person gets at least one positive point

    @field_validator("scale_bounds")
    @classmethod
    def _increasing(cls, v):
        if v is not None and any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError(f"must be increasing, got {v}")
        return v


class YOLOv3AssignConfig(AssignConfigBase):  # crowdet.assign.yolov3
    name: Literal["yolov3"] = "yolov3"
    # a prior whose predicted box overlaps a person above this IoU is not a negative
    ignore_iou: float = Field(0.7, gt=0.0, le=1.0)
    low_quality: bool = True  # every person gets at least one positive prior


class SimOTAAssignConfig(AssignConfigBase):  # crowdet.assign.simota
    name: Literal["simota"] = "simota"
    center_radius: Positive = 1.5  # half side of the centre prior, in strides
    candidate_topk: int = Field(10, ge=1)  # a person's best candidate IoUs summed to its k
    iou_weight: float = Field(3.0, ge=0.0)  # cost = cls + iou_weight * -log(IoU)
    low_quality: bool = True  # every person gets at least one positive point


class OTAAssignConfig(AssignConfigBase):  # crowdet.assign.ota
    name: Literal["ota"] = "ota"
    candidates: int = Field(25, ge=1)  # nearest priors per person and level (the centre prior)
    dynamic_q: int = Field(10, ge=1)  # a person's k = floor(sum of its q best predicted IoUs)
    eps: Positive = 0.1  # entropy of the Sinkhorn iterations
    iters: int = Field(50, ge=1)  # Sinkhorn iterations
    cls_weight: float = Field(1.0, ge=0.0)  # cost: -log(score)
    iou_weight: float = Field(3.0, ge=0.0)  # cost: -log(IoU of the predicted box)
    center_weight: float = Field(1.0, ge=0.0)  # cost: centre distance / prior size
    outside_cost: float = Field(5.0, ge=0.0)  # cost of a prior centre outside the person


class FreeAnchorAssignConfig(AssignConfigBase):  # crowdet.losses.free_anchor (a whole loss)
    name: Literal["freeanchor"] = "freeanchor"
    bag_size: int = Field(50, ge=1)  # anchors of a person's bag: its best by IoU
    # background term: a predicted box's IoU with a person counts from here (saturated linear,
    # 1 at the person's best predicted IoU)
    iou_low: float = Field(0.6, ge=0.0, lt=1.0)
    focal_alpha: Fraction = 0.5  # weight of the positive bag term (1 - alpha: background)
    focal_gamma: float = Field(2.0, ge=0.0)
    box_weight: float = Field(0.75, ge=0.0)  # weight of the box likelihood in a bag
    smooth_l1_beta: float = Field(0.11, ge=0.0)  # box likelihood exp(-smooth_l1 of the deltas)
    # the deltas that likelihood is measured in (dx, dy, dw, dh times these; FreeAnchor's and
    # mmdetection's: 10, 10, 5, 5), whatever the head's own box coding
    delta_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
