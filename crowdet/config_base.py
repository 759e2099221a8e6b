"""Building blocks of the config schema, shared by crowdet.config and the component files.

- `Section`: a config section that rejects unknown keys, wrong types and NaN / infinite floats.
- `FieldError`: a cross-field check's failure naming its key.
- `Variant` and `by_name`: a component section (`model.backbone`, `model.neck`, `model.head`) is
  one of several variants picked by its `name`: a discriminated union on `name`, each member a
  config model with its own keys and defaults. The members are the rows of a name table
  `{name: (config model, builder)}` kept beside the builders (crowdet.models.build) and read when a
  config is validated, so a row added later validates like the built-in ones and the config
  schema never imports the models. A key of another variant is an unknown key, answered with the
  keys of the variant the name picks.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, WrapValidator

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]  # in [0, 1]
Positive = Annotated[float, Field(gt=0.0)]


class FieldError(ValueError):
    """A cross-field check's failure, naming the key it is about (relative to its section)."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


class Section(BaseModel):
    # allow_inf_nan=False: no float key may be NaN or infinite (`train.lr=nan` is an error)
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class Variant(Section):
    """A component variant's config model; each variant fixes `name` to its table key with a
    `Literal` and declares its own keys and defaults (the only defaults of its builder)."""

    name: str


def unknown_name(name: object, names: Iterable[str]) -> str:
    """'unknown name ...' naming the valid names and the closest one."""
    names = sorted(names)
    close = difflib.get_close_matches(str(name), names, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown name '{name}'{hint} (valid: {', '.join(names)})"


@dataclass(frozen=True)
class ByName:
    """How a component section picks its config model: `table()` is the name table
    {name: (config model, builder)}; a section that names no variant is `default`."""

    table: Callable[[], dict[str, tuple[type[Variant], Callable]]]
    default: str

    def model_for(self, data: Any) -> type[Variant] | None:
        """The config model that `data`'s name picks (None: not a name of the table)."""
        name = data.get("name", self.default) if isinstance(data, dict) else None
        row = self.table().get(name) if isinstance(name, str) else None
        return None if row is None else row[0]

    def validate(self, data: Any, handler: Callable) -> Variant:
        if isinstance(data, Variant):
            if type(data) is self.model_for({"name": data.name}):
                return data
            data = data.model_dump()
        if not isinstance(data, dict):
            raise ValueError(f"must be a mapping of keys with a 'name', got {data!r}")
        model = self.model_for(data)
        if model is None:
            raise FieldError("name", unknown_name(data.get("name"), self.table()))
        return model.model_validate(data)  # its errors carry this section's key path

    def owners(self, key: str) -> list[str]:
        """The variant names whose config models have `key`."""
        return [name for name, row in self.table().items() if key in row[0].model_fields]

    def drop_foreign(self, value: Any, name: str | None = None) -> Any:
        """A raw section without the keys of variants other than `name` (default: the one the
        section names); keys no variant has stay, to fail as unknown."""
        if not isinstance(value, dict):
            return value
        own = self.model_for({"name": value.get("name", self.default) if name is None else name})
        if own is None:
            return value
        known = {k for row in self.table().values() for k in row[0].model_fields}
        return {k: v for k, v in value.items() if k in own.model_fields or k not in known}


def by_name(table: Callable[[], dict], default: str) -> Any:
    """The type of a section holding one variant of a name table (see ByName). Use it with
    `Field(default_factory=dict, validate_default=True)`: the default is `default`'s defaults."""
    choice = ByName(table, default)
    return Annotated[SerializeAsAny[Variant], WrapValidator(choice.validate), choice]


def by_name_of(field_info: Any) -> ByName | None:
    """The ByName of a field declared with `by_name`, else None."""
    return next((m for m in getattr(field_info, "metadata", ()) if isinstance(m, ByName)), None)


def variant_sections(root: type[BaseModel]) -> list[str]:
    """The fields of `root` that hold one variant of a name table."""
    return [name for name, field in root.model_fields.items() if by_name_of(field)]


def switched_variants(root: type[BaseModel], data: dict, overrides: dict) -> dict[str, str]:
    """{section: new name} for each variant section of `root` whose name the overrides change
    (raw dicts: the config read so far and the overrides)."""
    out = {}
    for section in variant_sections(root):
        old, new = data.get(section), overrides.get(section)
        if isinstance(old, dict) and isinstance(new, dict) and "name" in new:
            if new["name"] != old.get("name", by_name_of(root.model_fields[section]).default):
                out[section] = new["name"]
    return out


def drop_foreign_keys(root: type[BaseModel], data: dict, sections: dict[str, str | None]) -> dict:
    """The raw config `data` with other variants' keys dropped from each of `sections`
    (section -> the variant to keep, None: the one the section names)."""
    out = dict(data)
    for section, name in sections.items():
        if section in out:
            out[section] = by_name_of(root.model_fields[section]).drop_foreign(out[section], name)
    return out


def section_model(field_info: Any, data: Any) -> type[BaseModel] | None:
    """The config model of a field given its input `data`: the variant it names for a `by_name`
    field, the section model for a section field, None otherwise."""
    choice = by_name_of(field_info)
    if choice is not None:
        return choice.model_for(data if isinstance(data, dict) else {})
    annotation = field_info.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None
