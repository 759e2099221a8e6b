"""Putting a checkpoint's weights into a model, with one-line answers for what goes wrong.

- a torch file that is not a crowdet checkpoint (no `model` entry of tensors);
- weights that hold NaN or inf (a diverged run): refused, naming the first such tensor;
- weights of another architecture: the checkpoint holds its config, so the error names the
  `model.*` keys that differ (`model.backbone.width=16, the config says 8`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from crowdet.config import Config, config_from_dict, config_to_dict, diff_configs, saved_config
from crowdet.errors import ConfigError, CrowdetError

log = logging.getLogger(__name__)

MAX_KEYS_NAMED = 4  # differing config keys written out in one message


def _is_weights(value) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())
    )


def checkpoint_weights(state: dict, path: str | Path, ema: bool = True) -> dict:
    """The weights a checkpoint holds: its EMA ones (when `ema` and present), else `model`."""
    if ema and _is_weights(state.get("ema")):
        return state["ema"]
    if not _is_weights(state.get("model")):
        keys = ", ".join(map(str, list(state)[:5])) or "nothing"
        raise CrowdetError(
            f"{path}: not a crowdet checkpoint (no 'model' entry of weights; it holds {keys}); "
            "pass a last.pt or best.pt written by `crowdet train`"
        )
    return state["model"]


def checkpoint_config(state: dict, path: str | Path) -> Config:
    """The config a checkpoint was trained with."""
    if not isinstance(state.get("config"), dict):
        raise CrowdetError(
            f"{path}: not a crowdet checkpoint (no 'config' entry); "
            "pass a last.pt or best.pt written by `crowdet train`"
        )
    try:
        return config_from_dict(saved_config(state["config"]), f"{path} (its config)")
    except ConfigError as e:
        raise CrowdetError(f"{e}; was it written by another crowdet version?") from None


def check_finite(weights: dict, path: str | Path) -> None:
    """CrowdetError naming the first floating-point tensor holding NaN or inf."""
    for name, t in weights.items():
        if t.is_floating_point() or t.is_complex():
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                raise CrowdetError(
                    f"{path}: the weights are not finite ({name}: {bad} of {t.numel()} values "
                    "NaN or inf), so every score would be meaningless; the run had diverged "
                    "before this save: use an earlier checkpoint"
                )


def model_differences(state: dict, cfg: Config) -> list[str]:
    """`model.* key=saved (the config says current)` for each model key the checkpoint's config
    holds with another value; [] when it holds no config."""
    saved = state.get("config")
    if not isinstance(saved, dict) or not isinstance(saved.get("model"), dict):
        return []
    current = config_to_dict(cfg)["model"]
    out = []
    for key in diff_configs(saved["model"], current):
        old, new = _lookup(saved["model"], key), _lookup(current, key)
        out.append(f"model.{key}={old} (the config says {new})")
    return out


def _lookup(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def _named(items: list[str]) -> str:
    more = len(items) - MAX_KEYS_NAMED
    return ", ".join(items[:MAX_KEYS_NAMED]) + (f" and {more} more" if more > 0 else "")


def load_weights(
    model: nn.Module, state: dict, path: str | Path, cfg: Config, ema: bool = True
) -> None:
    """Put the checkpoint's weights (see checkpoint_weights) into `model`, built from `cfg`.

    Refuses non-finite weights and weights of another architecture with one line each; warns
    when the checkpoint was trained with other model keys whose weights still fit (anchors)."""
    weights = checkpoint_weights(state, path, ema)
    check_finite(weights, path)
    differences = model_differences(state, cfg)
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        if differences:
            raise CrowdetError(
                f"{path}: the checkpoint was trained with another model: {_named(differences)}; "
                "use the config it was trained with (config.yaml in its run folder)"
            ) from None
        first = str(e).split("\n\t")[1] if "\n\t" in str(e) else str(e)
        first = " ".join(first.split())[:240]
        raise CrowdetError(
            f"{path}: the weights do not fit the model the config builds ({first})"
        ) from None
    if differences:
        log.warning(
            "%s was trained with other model settings: %s; using the config's",
            path,
            _named(differences),
        )


def with_overrides(cfg: Config, overrides: list[str], source: str | Path) -> Config:
    """`cfg` with `key=value` overrides applied (as on the command line), validated."""
    if not overrides:
        return cfg
    from crowdet.config import drop_foreign_keys, merge, parse_overrides, switched_variants

    data = config_to_dict(cfg)
    extra = parse_overrides(overrides)
    data = merge(drop_foreign_keys(Config, data, switched_variants(Config, data, extra)), extra)
    return config_from_dict(data, f"{source} (its config) + overrides")
