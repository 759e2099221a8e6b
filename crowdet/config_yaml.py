"""Reading config YAML: safe loading only, one-line errors naming the file (and line).

The loader is PyYAML's SafeLoader (what `yaml.safe_load` uses: no `!!python` tags, nothing
constructed but plain data) with one addition: a key given twice in one mapping is an error
naming both lines, instead of the last value winning silently.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from crowdet.errors import ConfigError

_MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(Exception):
    def __init__(self, key, line: int, first: int):
        super().__init__(f"duplicate key '{key}' (first given at line {first}); keep one")
        self.key, self.line, self.first = key, line, first


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a mapping holding the same key twice (`<<` merges may still
    be overridden: a key written next to a merge is not a duplicate)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise DuplicateKeyError(key, line, seen[key])
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str):
    """yaml.safe_load(text), except that duplicate keys raise DuplicateKeyError."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        found = sorted(p.name for p in path.glob("*.yaml"))[:5]
        hint = f" (it holds {', '.join(found)})" if found else ""
        message = f"{path}: is a folder, not a config file; pass a YAML file{hint}"
        raise ConfigError(message) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (not UTF-8); pass a YAML config") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config: {e.strerror or e}") from None


def read_yaml(path: Path) -> dict:
    """The mapping in a config file; ConfigError naming the file for anything else."""
    text = _read_text(path)
    try:
        data = parse_yaml(text)
    except DuplicateKeyError as e:
        raise ConfigError(f"{path}:{e.line}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    if data is None:
        raise ConfigError(
            f"{path}: the config file is empty; write the keys to set "
            "(or `{}` to use every default)"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    return data


def merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
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
            node[parts[-1]] = parse_yaml(value)
        except DuplicateKeyError as e:
            raise ConfigError(f"override '{item}': {e}") from None
        except yaml.YAMLError:
            node[parts[-1]] = value
    return tree
