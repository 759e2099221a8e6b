"""Typed configuration: YAML (safe_load) -> pydantic schema, dotted CLI overrides, validation, dump.

Every hyperparameter lives here, each with a comment and its bounds, except a model component's,
which live beside the component in its variant's config model (crowdet.config_base). Unknown
keys, wrong types and values out of bounds (no float may be NaN or infinite) are errors naming
the key path and, for unknown keys, the closest valid key. A config may name one `base:` file
(resolved relative to itself); the base may not have a base of its own. Reading the YAML is
crowdet.config_yaml. The assign section
has one model per assigner the same way, picked by its `name` (crowdet.config_assign); the train
and eval sections are crowdet.config_train.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from crowdet.config_assign import (  # noqa: F401 (re-exported)
    AssignConfigBase,
    ATSSAssignConfig,
    FCOSAssignConfig,
    FreeAnchorAssignConfig,
    MaxIoUAssignConfig,
    OTAAssignConfig,
    SimOTAAssignConfig,
    YOLOv3AssignConfig,
)
from crowdet.config_base import (  # noqa: F401 (re-exported)
    FieldError,
    Fraction,
    Positive,
    Section,
    Variant,
    by_name,
    by_name_of,
    drop_foreign_keys,
    section_model,
    switched_variants,
    variant_sections,
)
from crowdet.config_train import EvalConfig, TrainConfig  # noqa: F401 (re-exported)
from crowdet.config_yaml import (  # noqa: F401 (re-exported)
    diff_configs,
    merge,
    parse_overrides,
    read_yaml,
)
from crowdet.errors import ConfigError


class SynthConfig(Section):
    preset: str = "demo"  # crowdet.data.synth preset used when data.root is missing
    train: int = Field(1500, ge=0)  # number of training images to generate
    val: int = Field(300, ge=0)  # number of validation images to generate
    seed: int = 0  # generator seed (independent of train.seed)


class DataConfig(Section):
    root: str = "data/synth-demo"  # dataset in CrowdHuman layout
    # annotation format of train_ann / val_ann, read by crowdet.data's reader of that format:
    # odgt | coco | ecp | citypersons | widerperson (crowdet.engine.data.FORMAT_LAYOUTS)
    format: Literal["odgt", "coco", "ecp", "citypersons", "widerperson"] = "odgt"
    # annotation files (folders for ecp) relative to root unless absolute; left at these odgt
    # names with another format, the format's usual layout (FORMAT_LAYOUTS) is used
    train_ann: str = "annotation_train.odgt"
    val_ann: str = "annotation_val.odgt"
    # image folder relative to root ("Images"; with another format left at "Images", the
    # format's usual folder)
    images: str = "Images"
    box: Literal["full", "visible", "head"] = "full"  # which box kind to train on
    # generate a synthetic set when data.root does not exist (null: never)
    synth: SynthConfig | None = Field(default_factory=SynthConfig)
    # letterbox: the longer side becomes input_size (the demo); keep_ratio: the shorter side
    # becomes min_size with the longer side at most max_size (the CrowdHuman recipes: 800 / 1400)
    resize: Literal["letterbox", "keep_ratio"] = "letterbox"
    # longest image side after the letterbox resize (pixels): a positive multiple of size_divisor
    input_size: int = Field(320, gt=0)
    min_size: int = Field(800, gt=0)  # keep_ratio: shorter side (pixels)
    max_size: int = Field(1400, gt=0)  # keep_ratio: longer side at most (pixels)
    size_divisor: int = Field(32, ge=1)  # batches are padded to a multiple of this
    min_box_size: float = Field(2.0, ge=0.0)  # training boxes smaller than this: dropped
    workers: int = Field(0, ge=0)  # DataLoader worker processes (0 = load in the training process)
    strict: bool = False  # data problems are errors instead of counted skips
    max_images: int = Field(0, ge=0)  # use only the first N images of each split (0 = all)
    # keep decoded training images in memory between epochs, up to cache_mb megabytes
    cache: bool = False
    cache_mb: int = Field(2048, ge=0)

    @model_validator(mode="after")
    def _input_size_fits_divisor(self):
        size, div = self.input_size, self.size_divisor
        if size % div:
            lower, upper = size // div * div, (size // div + 1) * div
            near = f"{lower} or {upper}" if lower else str(upper)
            message = f"must be a multiple of data.size_divisor={div}, got {size} (use {near})"
            raise FieldError("input_size", message)
        return self


Side = Annotated[float, Field(gt=0.0, le=1.0)]  # in (0, 1]


class AugmentConfig(Section):
    """Training augmentation (crowdet.data.pipeline, crowdet.data.augment). The strong ones
    (mosaic, mixup, affine, crop, copy_paste) are probabilities per sample, 0 = off (the default:
    no draw, the pipeline of a config without them is unchanged)."""

    hflip: Fraction = 0.5  # probability of a horizontal flip
    scale: tuple[Positive, Positive] = (1.0, 1.0)  # random rescale range around input_size
    hsv: tuple[Fraction, Fraction, Fraction] = (0.0, 0.0, 0.0)  # hue / saturation / value gains
    # training sizes, one drawn per sample: the shorter side (data.resize keep_ratio, still
    # capped by data.max_size) or the longer side (letterbox); [] = data.min_size / input_size
    multi_scale: list[Annotated[int, Field(gt=0)]] = []
    mosaic: Fraction = 0.0  # probability of a 4-image mosaic (YOLOX style)
    mixup: Fraction = 0.0  # probability of blending in another sample (weight ~ Beta(32, 32))
    affine: Fraction = 0.0  # probability of a random affine warp with the strengths below
    affine_scale: tuple[Positive, Positive] = (0.5, 1.5)  # zoom range
    affine_translate: Annotated[float, Field(ge=0.0, le=0.5)] = 0.1  # shift, fraction of the side
    affine_degrees: Annotated[float, Field(ge=0.0, le=45.0)] = 0.0  # rotation range +- degrees
    affine_shear: Annotated[float, Field(ge=0.0, le=45.0)] = 2.0  # shear range +- degrees
    crop: Fraction = 0.0  # probability of a random crop (zoomed back to the image size)
    crop_scale: tuple[Side, Side] = (0.5, 1.0)  # side of the crop / side of the image
    copy_paste: Fraction = 0.0  # probability of pasting people of another sample
    copy_paste_max: int = Field(8, ge=1)  # people pasted at most per sample
    # a person cut by a strong transform (crop, mosaic tile, affine border, pasted person) whose
    # visible part keeps less than this fraction of its area becomes an ignore region (0: never)
    min_visible: Fraction = 0.25
    # the strong ones off for the last steps of training (YOLOX's last 15 epochs):
    # 0 = never, 0 < x < 1 = that fraction of train.max_iters (as planned), x >= 1 = x steps
    strong_off_last: float = Field(0.0, ge=0.0)

    @field_validator("scale", "affine_scale", "crop_scale")
    @classmethod
    def _low_high(cls, v):
        if v[0] > v[1]:
            raise ValueError(f"must be [low, high] with low <= high, got {list(v)}")
        return v

    def strong(self) -> bool:
        """Whether any strong augmentation is on."""
        return any((self.mosaic, self.mixup, self.affine, self.crop, self.copy_paste))


def _table(kind: str):
    """The name table `kind` of crowdet.models.build, read when a config is validated (the
    tables import the models; this schema does not)."""

    def table() -> dict:
        from crowdet.models import build

        return getattr(build, kind)

    return table


# model.backbone / neck / head: one variant of crowdet.models.build's BACKBONES / NECKS / HEADS,
# picked by its `name` (default: the one named here), with the keys and defaults of that variant's
# config model (e.g. crowdet.models.heads.retina.RetinaHeadConfig)
BackboneConfig = by_name(_table("BACKBONES"), default="tiny")
NeckConfig = by_name(_table("NECKS"), default="fpn")
HeadConfig = by_name(_table("HEADS"), default="retina")


class AnchorConfig(Section):
    base_scale: Positive = 3.0  # anchor height at level k = base_scale * 2**k * octave scale
    octave_scales: list[Positive] = Field([1.0, 1.26, 1.587], min_length=1)  # scales per location
    aspect_ratios: list[Positive] = Field([2.44], min_length=1)  # anchor height / width
    # the anchors of a location: octave_major (octave scales outer, ratios inner) or ratio_major
    # (ratios outer: torchvision's order, for its weights)
    order: Literal["octave_major", "ratio_major"] = "octave_major"
    # what an anchor's size keeps across ratios: its height, or its area (torchvision, Detectron)
    keep: Literal["height", "area"] = "height"
    # anchor centres at (column + center_offset) * stride (torchvision: 0, the cell's corner)
    center_offset: Fraction = 0.5


# ImageNet statistics of 0-255 pixels in BGR order (images are decoded by cv2)
PIXEL_MEAN_BGR = (103.53, 116.28, 123.675)
PIXEL_STD_BGR = (57.375, 57.12, 58.395)


class ModelConfig(Section):
    num_classes: int = Field(1, ge=1)  # person: 1 until the loss trains several classes
    # the model's input normalisation (x - pixel_mean) / pixel_std per channel, BGR order
    pixel_mean: tuple[float, float, float] = PIXEL_MEAN_BGR
    pixel_std: tuple[Positive, Positive, Positive] = PIXEL_STD_BGR
    backbone: BackboneConfig = Field(default_factory=dict, validate_default=True)
    neck: NeckConfig = Field(default_factory=dict, validate_default=True)
    head: HeadConfig = Field(default_factory=dict, validate_default=True)
    anchors: AnchorConfig = Field(default_factory=AnchorConfig)
    # a crowdet checkpoint whose weights start training (fine-tuning): tensors of another shape
    # are skipped and reported; its optimizer and schedule are not used (null: none)
    init_from: str | None = None
    # NHWC memory layout for weights and activations: faster convolutions with oneDNN (CPU bf16)
    # and CUDA AMP; the results are the same up to the order of floating-point sums
    channels_last: bool = False

    @field_validator("num_classes")
    @classmethod
    def _one_class(cls, v):
        if v != 1:
            raise ValueError(
                f"must be 1 until multi-class training exists (the loss trains one class, "
                f"person), got {v}"
            )
        return v


def _assigners():
    from crowdet.models.build import ASSIGNERS  # late: crowdet.models.build imports this module

    return ASSIGNERS


# assign: one model per assigner, picked by assign.name (max_iou when it is not given)
AssignConfig = by_name(_assigners, "max_iou")


class LossConfig(Section):
    cls: Literal["focal", "quality_focal"] = "focal"  # quality_focal: IoU-aware score targets
    focal_alpha: float = Field(0.25, le=1.0)  # weight of positives (< 0: none, as torchvision)
    focal_gamma: float = Field(2.0, ge=0.0)
    box: Literal["giou", "diou", "ciou", "smooth_l1"] = "giou"  # box regression loss
    box_weight: float = Field(2.0, ge=0.0)  # weight of the box term
    smooth_l1_beta: float = Field(0.1, ge=0.0)  # for box: smooth_l1 (on deltas)
    # heads with an objectness or quality branch (fcos, yolov3, yolox): weight of that term
    obj_weight: float = Field(1.0, ge=0.0)
    # yolox head: an L1 term on the raw box regression over the last N optimizer steps (YOLOX
    # adds it for its last 15 epochs; 0 = off)
    l1_last_iters: int = Field(0, ge=0)
    # Repulsion loss (crowdet.losses.repulsion), 0 = off: RepGT pushes a positive's box away from
    # the person it is not assigned to that overlaps it most, RepBox pushes apart the boxes of
    # positives assigned to different people; sigma of their smooth-ln
    rep_gt: float = Field(0.0, ge=0.0)
    rep_box: float = Field(0.0, ge=0.0)
    rep_sigma_gt: float = Field(0.5, ge=0.0, lt=1.0)
    rep_sigma_box: float = Field(0.5, ge=0.0, lt=1.0)


class PostprocessConfig(Section):
    # detections below are dropped before NMS (0: keep all; 1 would keep none)
    score_threshold: float = Field(0.05, ge=0.0, lt=1.0)
    pre_nms_topk: int = Field(1000, ge=1)  # best candidates per image (and pass) kept before NMS
    # the suppression (crowdet.postprocess.suppress): hard NMS; soft (Soft-NMS, soft_method);
    # adaptive (Adaptive NMS, needs model.head.density); visible (visible-box-guided NMS, needs
    # model.head.visible); set (Set NMS, needs model.head.instances > 1)
    nms: Literal["hard", "soft", "adaptive", "visible", "set"] = "hard"
    # NMS IoU threshold (Adaptive NMS: the least one; linear Soft-NMS: where the decay starts)
    iou_threshold: float = Field(0.5, gt=0.0, le=1.0)
    soft_method: Literal["gaussian", "linear"] = "gaussian"  # Soft-NMS decay
    soft_sigma: Positive = 0.5  # Gaussian Soft-NMS sigma
    max_dets: int = Field(500, ge=1)  # detections per image after NMS (no cap of 100)
    # box voting: a kept box becomes the score-weighted mean of the candidates with IoU > vote_iou
    # around it (0 = off; keep it high in crowds, where neighbours overlap)
    vote_iou: float = Field(0.0, ge=0.0, lt=1.0)
    # test-time augmentation: detect on the input resized by each of test_scales (1.0 = as is)
    # and, with flip_test, on each one mirrored left-right too; the candidates of all passes join
    # before NMS (one forward pass per scale, twice that with flip_test)
    flip_test: bool = False
    test_scales: list[Annotated[float, Field(gt=0.0, le=4.0)]] = Field([1.0], min_length=1)


class Config(Section):
    name: str = "run"  # run name (runs/train/<name>-N): one folder name, no '/' or '..'
    data: DataConfig = Field(default_factory=DataConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    assign: AssignConfig = Field(default_factory=dict, validate_default=True)
    loss: LossConfig = Field(default_factory=LossConfig)
    postprocess: PostprocessConfig = Field(default_factory=PostprocessConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @field_validator("name")
    @classmethod
    def _one_folder_name(cls, v: str):
        if v.strip() in ("", ".", "..") or "/" in v or "\\" in v or "\0" in v:
            raise ValueError(
                f"must be one folder name (no '/', '\\' or '..': the run goes in runs/train/), "
                f"got {v!r}"
            )
        return v

    def scores_visible(self) -> bool:
        """Whether evaluation scores the visible boxes a full + visible head predicts beside its
        full boxes (eval.box: visible on a model trained on data.box: full or head)."""
        return (self.eval.box or self.data.box) == "visible" and self.data.box != "visible"


def _section_at(path: tuple[str | int, ...], data: Any) -> tuple[type[BaseModel] | None, Any]:
    """The config model of the section at `path` of the raw config `data` (for a variant
    section, the one its name picks) and the section's ByName (None for a plain section)."""
    model, choice = Config, None
    for part in path:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        data = data.get(part) if isinstance(data, dict) else None
        sub = section_model(field, data) if field is not None else None
        if sub is None:
            return None, None
        model, choice = sub, by_name_of(field)
    return model, choice


def _unknown_key(loc: tuple[str | int, ...], data: Any) -> str:
    """'unknown key ...' naming the closest valid key, the valid keys and, in a variant section,
    the variants that have the key."""
    model, choice = _section_at(loc[:-1], data)
    valid = list(model.model_fields) if model is not None else []
    close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
    section = ".".join(map(str, loc[:-1]))
    hint = f"; did you mean '{'.'.join([*map(str, loc[:-1]), close[0]])}'?" if close else ""
    owners = choice.owners(str(loc[-1])) if choice is not None else []
    if owners:
        hint += f"; it is a key of {' and '.join(f'{section}.name={n}' for n in owners)}"
    key = ".".join(map(str, loc))
    return f"unknown key '{key}'{hint} (valid here: {', '.join(valid)})"


def _explain(err: ValidationError, source: str, data: Any = None) -> ConfigError:
    lines = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        key = ".".join(str(p) for p in loc)
        if e["type"] == "extra_forbidden":
            lines.append(_unknown_key(loc, data))
        elif isinstance(e.get("ctx", {}).get("error"), FieldError):
            err_ = e["ctx"]["error"]
            lines.append(f"'{'.'.join([*map(str, loc), err_.key])}': {err_}")
        elif e["type"] == "value_error":
            lines.append(f"'{key}': {e['ctx']['error']}")
        else:
            lines.append(f"'{key}': {e['msg']} (got {e.get('input')!r})")
    return ConfigError(f"{source}: " + "; ".join(lines))


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or the defaults when path is None), apply overrides, validate."""
    data: dict = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        data = read_yaml(path)
        base = data.pop("base", None)
        if base is not None:
            if not isinstance(base, str) or not base:
                raise ConfigError(f"{path}: 'base' must be the path of a config file, got {base!r}")
            base_data = read_yaml(path.parent / base)
            if "base" in base_data:
                raise ConfigError(f"{path.parent / base}: a base config may not have a base")
            data = merge(base_data, data)
    if overrides:
        extra = parse_overrides(overrides)
        data = merge(drop_foreign_keys(Config, data, switched_variants(Config, data, extra)), extra)
        source += " + overrides"
    return config_from_dict(data, source)


def config_from_dict(data: dict, source: str = "config") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise _explain(e, source, data) from None


def saved_config(data: dict) -> dict:
    """A config dict a checkpoint holds, without other variants' keys in its variant sections
    (configs saved before a section had one model per variant hold every variant's keys:
    assign.topk beside assign.pos_iou)."""
    return drop_foreign_keys(Config, data, {section: None for section in variant_sections(Config)})


def config_to_dict(cfg: Config) -> dict:
    return cfg.model_dump(mode="json")


def dump_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
