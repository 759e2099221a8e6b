"""Config sections with one model per variant, picked by the section's `name`.

Such a section is a discriminated union keyed on `name` whose members are the config models of a
name table (`crowdet.models.build`: name -> (config model, builder taking that model)): a row
added to the table is a variant the config accepts, with its own keys and defaults. A key of
another variant is an unknown key; a name missing from the section means the default variant.
Two places drop another variant's keys instead: an override that switches a section's variant
(`assign.name=atss` on a file whose assign section holds max-IoU keys) and a config saved before the
section had variants (it holds every variant's keys).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from pydantic import BaseModel, SerializeAsAny, WrapValidator

# name -> (config model, builder) rows; only the model is used here
Table = Mapping[str, tuple[type[BaseModel], Any]]


class FieldError(ValueError):
    """A cross-field check's failure, naming the key it is about (relative to its section)."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def unknown_name(name: str, valid: list[str]) -> str:
    """'unknown name ...; did you mean ...? (valid: ...)' for a name not in a table."""
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown name '{name}'{hint} (valid: {', '.join(sorted(valid))})"


class Variants:
    """The validator of a variant section: `table()` gives the rows (read when validating, so a
    row added at run time counts), `default` the name of a section that gives none."""

    def __init__(self, table: Callable[[], Table], default: str):
        self.table, self.default = table, default

    def models(self) -> dict[str, type[BaseModel]]:
        return {name: row[0] for name, row in self.table().items()}

    def model_for(self, value: Any) -> type[BaseModel] | None:
        """The model a section's raw value picks (None for an unknown name or a non-mapping)."""
        if isinstance(value, BaseModel):
            value = value.model_dump()
        if not isinstance(value, Mapping):
            return None
        return self.models().get(value.get("name", self.default))

    def owners(self, key: str) -> list[str]:
        """The variant names whose models have `key`."""
        return [name for name, model in self.models().items() if key in model.model_fields]

    def __call__(self, value: Any, handler: Any) -> BaseModel:
        if isinstance(value, BaseModel):
            value = value.model_dump()
        if not isinstance(value, Mapping):
            raise ValueError(f"must be a mapping with a 'name' key, got {value!r}")
        name = value.get("name", self.default)
        models = self.models()
        if name not in models:
            raise FieldError("name", unknown_name(str(name), list(models)))
        return models[name].model_validate({**value, "name": name})

    def drop_foreign(self, value: Any, name: str | None = None) -> Any:
        """A raw section (a dict) without the keys that belong to other variants than `name`
        (default: the one the section names). Keys no variant has stay, to fail as unknown."""
        if not isinstance(value, Mapping):
            return value
        models = self.models()
        own = models.get(value.get("name", self.default) if name is None else name)
        if own is None:
            return value
        known = {k for model in models.values() for k in model.model_fields}
        return {k: v for k, v in value.items() if k in own.model_fields or k not in known}


def variant_section(base: type[BaseModel], variants: Variants) -> Any:
    """The annotation of a section whose models derive from `base` (its keys every variant has);
    the section is dumped with the keys of the variant it holds."""
    return Annotated[SerializeAsAny[base], WrapValidator(variants)]


def variants_of(field: Any) -> Variants | None:
    """The Variants of a pydantic field declared with `variant_section`, else None."""
    for meta in getattr(field, "metadata", ()):
        if isinstance(meta, WrapValidator) and isinstance(meta.func, Variants):
            return meta.func
    return None


def variant_sections(root: type[BaseModel]) -> list[str]:
    """The fields of `root` (the whole config) that are variant sections."""
    return [name for name, field in root.model_fields.items() if variants_of(field)]


def switched_variants(root: type[BaseModel], data: dict, overrides: dict) -> dict[str, str]:
    """{section: new name} for each variant section of `root` whose name the overrides change
    (raw dicts: the config read so far and the overrides)."""
    out = {}
    for section in variant_sections(root):
        old, new = data.get(section), overrides.get(section)
        if isinstance(old, dict) and isinstance(new, dict) and "name" in new:
            default = variants_of(root.model_fields[section]).default
            if new["name"] != old.get("name", default):
                out[section] = new["name"]
    return out


def drop_foreign_keys(root: type[BaseModel], data: dict, sections: dict[str, str | None]) -> dict:
    """The raw config `data` with the keys of other variants dropped from each of `sections`
    (section -> the variant to keep, None: the one the section names)."""
    out = dict(data)
    for section, name in sections.items():
        if section in out:
            variants = variants_of(root.model_fields[section])
            out[section] = variants.drop_foreign(out[section], name)
    return out
