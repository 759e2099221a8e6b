"""Typed configuration: YAML (safe_load) -> pydantic schema, dotted CLI overrides, validation, dump.

Every hyperparameter lives here, each with a comment. Unknown keys and wrong types are errors naming
the key path and, for unknown keys, the closest valid key. A config may name one `base:` file
(resolved relative to itself); the base may not have a base of its own.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from crowdet.errors import ConfigError


def _off_if_false(value: Any) -> Any:
    # YAML 1.1 reads a bare `off` as false: `train.amp=off` means the mode 'off'
    return "off" if value is False else value


AmpMode = Annotated[Literal["off", "bf16", "fp16"], BeforeValidator(_off_if_false)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SynthConfig(Section):
    preset: str = "demo"  # crowdet.data.synth preset used when data.root is missing
    train: int = 1500  # number of training images to generate
    val: int = 300  # number of validation images to generate
    seed: int = 0  # generator seed (independent of train.seed)


class DataConfig(Section):
    root: str = "data/synth-demo"  # dataset in CrowdHuman layout
    train_ann: str = "annotation_train.odgt"  # relative to root unless absolute
    val_ann: str = "annotation_val.odgt"
    images: str = "Images"  # image folder relative to root
    box: Literal["full", "visible", "head"] = "full"  # which box kind to train on
    # generate a synthetic set when data.root does not exist (null: never)
    synth: SynthConfig | None = Field(default_factory=SynthConfig)
    input_size: int = 320  # longest image side after the letterbox resize (pixels)
    size_divisor: int = 32  # batches are padded to a multiple of this
    min_box_size: float = 2.0  # training boxes narrower/shorter than this after clipping: dropped
    workers: int = 0  # DataLoader worker processes (0 = load in the training process)
    strict: bool = False  # data problems are errors instead of counted skips
    max_images: int = 0  # use only the first N images of each split (0 = all)
    # keep decoded training images in memory between epochs, up to cache_mb megabytes
    cache: bool = False
    cache_mb: int = Field(2048, ge=0)


class AugmentConfig(Section):
    hflip: float = 0.5  # probability of a horizontal flip
    scale: tuple[float, float] = (1.0, 1.0)  # random rescale range around input_size
    hsv: tuple[float, float, float] = (0.0, 0.0, 0.0)  # hue / saturation / value jitter gains


class BackboneConfig(Section):
    name: str = "tiny"  # see crowdet.models.build.BACKBONES
    width: int = 16  # channels of the first stage (tiny backbone)
    depth: int = 1  # extra blocks per stage (tiny backbone)
    frozen_stages: int = 0  # stages whose weights are not trained


class NeckConfig(Section):
    name: str = "fpn"  # see crowdet.models.build.NECKS
    channels: int = 64  # output channels of every pyramid level
    levels: list[int] = [3, 4, 5, 6]  # pyramid levels Pk, stride 2**k


class HeadConfig(Section):
    name: str = "retina"  # see crowdet.models.build.HEADS
    convs: int = 2  # conv layers in each of the cls / box towers
    channels: int = 64  # tower width
    prior_prob: float = 0.01  # initial foreground probability (focal-loss bias init)
    norm: Literal["bn", "gn", "none"] = "bn"  # normalisation inside the towers


class AnchorConfig(Section):
    base_scale: float = 3.0  # anchor height at level k = base_scale * 2**k * octave scale
    octave_scales: list[float] = [1.0, 1.26, 1.587]  # scales per location
    aspect_ratios: list[float] = [2.44]  # height / width of the anchors (people stand)


class ModelConfig(Section):
    num_classes: int = 1  # person
    backbone: BackboneConfig = Field(default_factory=BackboneConfig)
    neck: NeckConfig = Field(default_factory=NeckConfig)
    head: HeadConfig = Field(default_factory=HeadConfig)
    anchors: AnchorConfig = Field(default_factory=AnchorConfig)
    # NHWC memory layout for weights and activations: faster convolutions with oneDNN (CPU bf16)
    # and CUDA AMP; the results are the same up to the order of floating-point sums
    channels_last: bool = False


class AssignConfig(Section):
    name: str = "max_iou"  # max_iou or atss (see crowdet.models.build.ASSIGNERS)
    pos_iou: float = 0.5  # max_iou: IoU at or above which a prior is positive
    neg_iou: float = 0.4  # max_iou: IoU below which a prior is negative
    topk: int = 9  # atss: candidate priors per person and pyramid level
    ignore_ioa: float = 0.5  # priors covered more than this by an ignore region are not negatives
    max_elements: int = 2**20  # (image, target, prior) entries per block: bounds memory in crowds


class LossConfig(Section):
    cls: Literal["focal", "quality_focal"] = "focal"  # quality_focal: IoU-aware score targets
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    box: Literal["giou", "diou", "ciou", "smooth_l1"] = "giou"  # box regression loss
    box_weight: float = 2.0  # weight of the box term
    smooth_l1_beta: float = 0.1  # for box: smooth_l1 (on deltas)


class PostprocessConfig(Section):
    score_threshold: float = 0.05  # detections below are dropped before NMS
    pre_nms_topk: int = 1000  # best candidates per image (and test-time pass) kept before NMS
    nms: Literal["hard", "soft"] = "hard"  # crowdet.postprocess
    iou_threshold: float = 0.5  # NMS IoU threshold
    soft_sigma: float = 0.5  # Gaussian Soft-NMS sigma
    max_dets: int = 500  # detections per image after NMS (no cap of 100)
    # box voting: a kept box becomes the score-weighted mean of the candidates with IoU > vote_iou
    # around it (0 = off; keep it high in crowds, where neighbours overlap)
    vote_iou: float = Field(0.0, ge=0.0, lt=1.0)
    # test-time augmentation: detect on the input resized by each of test_scales (1.0 = as is)
    # and, with flip_test, on each one mirrored left-right too; the candidates of all passes join
    # before NMS (one forward pass per scale, twice that with flip_test)
    flip_test: bool = False
    test_scales: list[Annotated[float, Field(gt=0.0, le=4.0)]] = Field([1.0], min_length=1)


class TrainConfig(Section):
    max_iters: int = 3000  # total optimizer steps
    batch_size: int = 16
    optimizer: Literal["sgd", "adamw"] = "adamw"
    lr: float = 2e-3  # peak learning rate
    momentum: float = 0.9  # SGD momentum / AdamW beta1
    nesterov: bool = False
    weight_decay: float = 0.05  # not applied to norms and biases
    warmup_iters: int = 200  # linear warmup from warmup_factor * lr
    warmup_factor: float = 0.001
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    steps: list[float] = [0.67, 0.89]  # fractions of max_iters for the step schedule
    min_lr_ratio: float = 0.01  # cosine floor as a fraction of lr
    clip_grad: float = 10.0  # max gradient norm (0 = off)
    seed: int = 0
    deterministic: bool = False
    log_interval: int = 20  # steps between log lines
    eval_interval: int = 0  # steps between validations (0 = only at the end)
    checkpoint_interval: int = 500  # steps between checkpoints
    time_limit: float = 0.0  # seconds; stop training early when reached (0 = none)
    # seconds of training to plan for (0 = off): from the pace of the steps so far the schedule
    # is fitted to end when this time is spent, at most max_iters steps (like ultralytics' time=)
    time_budget: float = Field(0.0, ge=0.0)
    # the fewest steps the recipe reaches its documented figures with: a time budget that plans
    # fewer (a slow or busy machine) says so at the start (0 = no check)
    budget_min_iters: int = Field(0, ge=0)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch CPU threads (0 = torch default)
    max_bad_steps: int = 20  # consecutive non-finite losses before the run stops
    accumulate: int = Field(1, ge=1)  # batches whose gradients are summed per optimizer step
    ema: bool = False  # keep an exponential moving average of the weights (used for evaluation)
    ema_decay: float = Field(0.9998, gt=0.0, lt=1.0)  # EMA decay, ramped up over the first steps
    amp: AmpMode = "off"  # mixed precision on CUDA (fp16 uses GradScaler)
    compile: bool = False  # torch.compile the detector's forward
    patience: int = Field(0, ge=0)  # evaluations without a better MR^-2 before stopping (0 = off)
    sync_bn: bool = False  # SyncBatchNorm across DDP ranks (CUDA only)
    lr_scale: Literal["none", "linear"] = "none"  # linear: lr * total batch / base_batch
    base_batch: int = Field(16, ge=1)  # total batch that train.lr is tuned for (lr_scale linear)
    dist_timeout: float = Field(1800.0, gt=0.0)  # seconds a DDP collective may wait before failing
    vis_images: int = Field(4, ge=0)  # validation pictures drawn to TensorBoard per evaluation


class EvalConfig(Section):
    box: Literal["full", "visible", "head"] | None = None  # default: data.box
    coco: bool = True  # also compute COCO AP through faster-coco-eval
    batch_size: int = 16


class Config(Section):
    name: str = "run"  # run name (runs/train/<name>-N)
    data: DataConfig = Field(default_factory=DataConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    assign: AssignConfig = Field(default_factory=AssignConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    postprocess: PostprocessConfig = Field(default_factory=PostprocessConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)


def _valid_keys(model: type[BaseModel], path: tuple[str | int, ...]) -> list[str]:
    for part in path:
        field = model.model_fields.get(str(part)) if isinstance(part, str) else None
        if field is None:
            return []
        sub = _section_type(field.annotation)
        if sub is None:
            return []
        model = sub
    return list(model.model_fields)


def _section_type(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _explain(err: ValidationError, source: str) -> ConfigError:
    lines = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        key = ".".join(str(p) for p in loc)
        if e["type"] == "extra_forbidden":
            valid = _valid_keys(Config, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
            hint = f"; did you mean '{'.'.join([*map(str, loc[:-1]), close[0]])}'?" if close else ""
            lines.append(f"unknown key '{key}'{hint} (valid here: {', '.join(valid)})")
        else:
            lines.append(f"'{key}': {e['msg']} (got {e.get('input')!r})")
    return ConfigError(f"{source}: " + "; ".join(lines))


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    return data


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_overrides(overrides: list[str]) -> dict:
    """['train.lr=0.01', 'model.neck.levels=[3,4]'] -> nested dict (values parsed as YAML)."""
    tree: dict = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        node = tree
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        try:
            node[parts[-1]] = yaml.safe_load(value)
        except yaml.YAMLError:
            node[parts[-1]] = value
    return tree


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or the defaults when path is None), apply overrides, validate."""
    data: dict = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        data = _read_yaml(path)
        base = data.pop("base", None)
        if base is not None:
            base_data = _read_yaml(path.parent / base)
            if "base" in base_data:
                raise ConfigError(f"{path.parent / base}: a base config may not have a base")
            data = _merge(base_data, data)
    if overrides:
        data = _merge(data, parse_overrides(overrides))
        source += " + overrides"
    return config_from_dict(data, source)


def config_from_dict(data: dict, source: str = "config") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise _explain(e, source) from None


def config_to_dict(cfg: Config) -> dict:
    return cfg.model_dump(mode="json")


def dump_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def diff_configs(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain config dicts."""
    keys = sorted(set(a) | set(b))
    out = []
    for k in keys:
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += diff_configs(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}")
    return out
