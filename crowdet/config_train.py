"""The training and evaluation sections of the config (`train`, `eval`): what the engine reads;
crowdet.config uses them through `Config`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

from crowdet.config_base import Fraction, Positive, Section


def _off_if_false(value: Any) -> Any:
    # YAML 1.1 reads a bare `off` as false: `train.amp=off` means the mode 'off'
    return "off" if value is False else value


AmpMode = Annotated[Literal["off", "bf16", "fp16"], BeforeValidator(_off_if_false)]


class TrainConfig(Section):
    max_iters: int = Field(3000, ge=0)  # total optimizer steps
    batch_size: int = Field(16, ge=1)
    optimizer: Literal["sgd", "adamw"] = "adamw"
    lr: Positive = 2e-3  # peak learning rate
    momentum: float = Field(0.9, ge=0.0, lt=1.0)  # SGD momentum / AdamW beta1
    nesterov: bool = False
    weight_decay: float = Field(0.05, ge=0.0)  # not applied to norms and biases
    warmup_iters: int = Field(200, ge=0)  # linear warmup from warmup_factor * lr
    warmup_factor: float = Field(0.001, gt=0.0, le=1.0)
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    steps: list[Fraction] = [0.67, 0.89]  # fractions of max_iters for the step schedule
    min_lr_ratio: Fraction = 0.01  # cosine floor as a fraction of lr
    clip_grad: float = Field(10.0, ge=0.0)  # max gradient norm (0 = off)
    seed: int = Field(0, ge=0)
    deterministic: bool = False
    log_interval: int = Field(20, ge=1)  # steps between log lines
    eval_interval: int = Field(0, ge=0)  # steps between validations (0 = only at the end)
    checkpoint_interval: int = Field(500, ge=0)  # steps between checkpoints (0 = only at the end)
    time_limit: float = Field(0.0, ge=0.0)  # seconds; stop training early when reached (0 = none)
    # seconds of training to plan for (0 = off): from the pace of the steps so far the schedule
    # is fitted to end when this time is spent, at most max_iters steps (like ultralytics' time=)
    time_budget: float = Field(0.0, ge=0.0)
    # what the budget counts: wall seconds, or the process's CPU seconds (`cpu`: runs sharing a
    # machine get the same compute whatever the load; with N threads a wall second counts up to N)
    budget_clock: Literal["wall", "cpu"] = "wall"
    # the fewest steps the recipe reaches its documented figures with: a time budget that plans
    # fewer (a slow or busy machine) says so at the start (0 = no check)
    budget_min_iters: int = Field(0, ge=0)
    # the recipe's measured quality by steps, [[steps, AP, MR^-2], ...] on the data the config
    # documents: a plan below budget_min_iters also says what it is expected to score
    budget_curve: list[tuple[Annotated[int, Field(gt=0)], Fraction, Fraction]] = []
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = Field(0, ge=0)  # torch CPU threads (0 = torch default)
    max_bad_steps: int = Field(20, ge=1)  # consecutive non-finite losses before the run stops
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

    @field_validator("budget_curve")
    @classmethod
    def _ascending_steps(cls, v):
        steps = [row[0] for row in v]
        if any(b <= a for a, b in zip(steps, steps[1:])):
            raise ValueError(f"the steps of [steps, AP, MR^-2] rows must ascend, got {steps}")
        return v


class EvalConfig(Section):
    box: Literal["full", "visible", "head"] | None = None  # default: data.box
    coco: bool = True  # also compute COCO AP through faster-coco-eval
    # also the Caltech / CityPersons MR^-2 setups (Reasonable, Small, Heavy, All) in eval, val
    # and the validation during training
    caltech: bool = False
    batch_size: int = Field(16, ge=1)
