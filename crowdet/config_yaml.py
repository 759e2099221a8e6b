"""Reading config YAML: safe loading only, one-line errors naming the file (and line).

Configs are read with `yaml.safe_load` (no `!!python` tags, nothing constructed but plain data),
after one check on the composed node tree: a key given twice in one mapping is an error naming
both lines, instead of the last value winning silently.
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


def _check_unique_keys(root: yaml.Node) -> None:
    """DuplicateKeyError for the first mapping of the composed YAML tree holding one key twice
    (`<<` merges may still be overridden: a key written next to a merge is not a duplicate)."""
    stack, visited = [root], set()
    while stack:
        node = stack.pop()
        if id(node) in visited:  # an alias refers to a node already checked
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, value_node in node.value:
                stack.append(value_node)
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key, line = (key_node.tag, key_node.value), key_node.start_mark.line + 1
                if key in seen:
                    raise DuplicateKeyError(key_node.value, line, seen[key])
                seen[key] = line
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def parse_yaml(text: str):
    """yaml.safe_load(text), after a check on the composed tree (nothing constructed) that no
    mapping holds a key twice (DuplicateKeyError)."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        _check_unique_keys(root)
    return yaml.safe_load(text)


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
