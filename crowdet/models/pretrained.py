"""Starting weights: a backbone's pretrained weights and a detector checkpoint to fine-tune from.

- `model.backbone.weights`: a torchvision weights name (`ResNet50_Weights.IMAGENET1K_V1`: the
  only case in which anything is downloaded, by torchvision into its cache) or a local file
  holding a state dict (torchvision's classification networks, Darknet-53, CSPDarknet; a dict
  with it under `state_dict`, `model` or `ema` works too).
- `model.init_from`: a crowdet checkpoint (`last.pt` / `best.pt`); its weights (EMA ones when
  it has them) start the detector, nothing of its optimizer or schedule.

Files are read with `torch.load(weights_only=True)` (a pickled payload is refused). Keys are
matched after dropping the leading prefix that makes the most of them fit (`module.`,
`backbone.body.` ...); tensors of another shape (a head for another number of anchors) are
skipped; all of it is reported through logging. A file of which nothing fits is an error naming
the file.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from crowdet.engine.checkpoint import load_checkpoint
from crowdet.engine.weights import check_finite, checkpoint_weights
from crowdet.errors import ConfigError, CrowdetError

log = logging.getLogger(__name__)

WEIGHTS_NAME = re.compile(r"[A-Za-z0-9_]+_Weights\.[A-Za-z0-9_]+")
NAMED = 5  # keys written out in one log line


@dataclass
class LoadReport:
    loaded: list[str] = field(default_factory=list)  # target keys given a tensor
    missing: list[str] = field(default_factory=list)  # target keys the file did not fill
    unexpected: list[str] = field(default_factory=list)  # file keys that fit nothing
    mis_shaped: list[str] = field(default_factory=list)  # 'key (file shape vs model shape)'


def is_weights_name(spec: str) -> bool:
    """A torchvision weights name (`ResNet50_Weights.IMAGENET1K_V1`), not an existing file."""
    return bool(WEIGHTS_NAME.fullmatch(spec)) and not Path(spec).exists()


def _is_state_dict(value) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())
    )


def torchvision_state(name: str, key: str) -> dict[str, torch.Tensor]:
    """The state dict of torchvision weights `name` (downloaded into torchvision's cache)."""
    import torchvision

    try:
        weights = torchvision.models.get_weight(name)
    except (ValueError, KeyError, AttributeError):
        raise ConfigError(
            f"{key}: {name!r} is neither a file nor a torchvision weights name "
            "(such as ResNet50_Weights.IMAGENET1K_V1)"
        ) from None
    log.info("%s: torchvision weights %s (fetched into torchvision's cache if absent)", key, name)
    return weights.get_state_dict(progress=False, check_hash=True)


def file_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict a local file holds (as it is, or under state_dict / model / ema)."""
    state = load_checkpoint(path)  # weights_only; errors name the file
    if _is_state_dict(state):
        return state
    for entry in ("state_dict", "model", "ema"):
        if _is_state_dict(state.get(entry)):
            return state[entry]
    keys = ", ".join(map(str, list(state)[:NAMED])) or "nothing"
    raise CrowdetError(f"{path}: holds no state dict of tensors (it holds {keys})")


def _prefixes(keys: list[str], depth: int = 3) -> set[str]:
    out = {""}
    for k in keys:
        parts = k.split(".")
        out.update(".".join(parts[:i]) + "." for i in range(1, min(depth, len(parts) - 1) + 1))
    return out


def _best_prefix(source: list[str], target: set[str]) -> str:
    """The leading prefix whose removal makes the most source keys name target keys."""

    def fits(prefix: str) -> int:
        return sum(k.startswith(prefix) and k[len(prefix) :] in target for k in source)

    return max(sorted(_prefixes(source)), key=lambda p: (fits(p), -len(p)))


def load_matching(module: nn.Module, source: dict, origin: str, what: str) -> LoadReport:
    """Put the tensors of `source` whose keys (after the best prefix) and shapes fit into
    `module`; report the rest through logging. CrowdetError naming `origin` when no key fits."""
    own = module.state_dict()
    prefix = _best_prefix(list(source), set(own))
    report, chosen = LoadReport(), {}
    for k, tensor in source.items():
        name = k[len(prefix) :] if k.startswith(prefix) else None
        if name not in own:
            if not k.endswith("num_batches_tracked"):  # absent from FrozenBatchNorm2d
                report.unexpected.append(k)
        elif tensor.shape != own[name].shape:
            shapes = f"{tuple(tensor.shape)} in the file, {tuple(own[name].shape)} in the model"
            report.mis_shaped.append(f"{name} ({shapes})")
        else:
            chosen[name] = tensor
    if not chosen:
        raise CrowdetError(
            f"{origin}: none of its {len(source)} keys fits {what} (the file has "
            f"{_few(list(source))}; {what} has {_few(list(own))}); is it the right file?"
        )
    module.load_state_dict(chosen, strict=False)
    report.loaded = list(chosen)
    report.missing = [k for k in own if k not in chosen and not k.endswith("num_batches_tracked")]
    _log(report, origin, what, len(own))
    return report


def _few(keys: list[str]) -> str:
    more = f" and {len(keys) - NAMED} more" if len(keys) > NAMED else ""
    return ", ".join(keys[:NAMED]) + more


def _log(report: LoadReport, origin: str, what: str, total: int) -> None:
    log.info("%s: %d of %d tensors of %s loaded", origin, len(report.loaded), total, what)
    if report.mis_shaped:
        log.warning("%s: skipped, another shape: %s", origin, _few(report.mis_shaped))
    if report.missing:
        log.warning("%s: not in the file (left as initialised): %s", origin, _few(report.missing))
    if report.unexpected:
        log.info("%s: unused keys of the file: %s", origin, _few(report.unexpected))


def load_backbone_weights(backbone: nn.Module, spec: str, key: str) -> LoadReport:
    """Load `spec` (a torchvision weights name or a local file) into `backbone`."""
    if is_weights_name(spec):
        return load_matching(backbone, torchvision_state(spec, key), spec, "the backbone")
    if not Path(spec).is_file():
        raise ConfigError(f"{key}: no such file: {spec}")
    return load_matching(backbone, file_state(spec), spec, "the backbone")


def init_from_checkpoint(model: nn.Module, path: str | Path, key: str) -> LoadReport:
    """Start `model` from a crowdet checkpoint's weights (EMA ones when present)."""
    if not Path(path).is_file():
        raise ConfigError(f"{key}: no such file: {path}")
    weights = checkpoint_weights(load_checkpoint(path), path)
    check_finite(weights, path)
    return load_matching(model, weights, str(path), "the detector")


def load_initial_weights(model: nn.Module, cfg) -> None:
    """A fresh training run's starting weights: the backbone's `weights`, then `init_from`."""
    spec = getattr(cfg.model.backbone, "weights", None)
    if spec:
        load_backbone_weights(model.backbone, spec, "model.backbone.weights")
    if cfg.model.init_from:
        init_from_checkpoint(model, cfg.model.init_from, "model.init_from")
