"""The template engine of the GitOps tree: `argocd/` templates are parsed as YAML *before*
substitution, so a value can never add or change structure (see `argocd/README.md`)."""

from __future__ import annotations

import copy
import re
from functools import cache
from typing import Any

import yaml

from ..errors import ConfigError
from ..resources import argocd_dir

_PLACEHOLDER = re.compile(r"\$\{([a-z_][a-z0-9_.]*)\}")


_DROP = object()  # a whole-value placeholder that resolved to None: the key is left out


# libyaml's parser when PyYAML has it: the templates parse several times faster
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@cache
def _load(rel: str) -> Any:
    path = argocd_dir() / rel
    return yaml.load(path.read_text(), Loader=_YAML_LOADER)


def _lookup(key: str, values: dict[str, Any]) -> Any:
    cur: Any = values
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise KeyError(key)
        cur = cur[part]
    return cur


def _copy(value: Any) -> Any:
    """A private copy of a value put into a template (the JSON-like values are copied by
    hand: `copy.deepcopy` of them was a large part of rendering)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return copy.deepcopy(value)


def substitute(node: Any, values: dict[str, Any], where: str = "template") -> Any:
    """Replace `${key}` in the string leaves of an already-parsed template."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            new = substitute(v, values, where)
            if new is not _DROP:
                out[k] = new
        return out
    if isinstance(node, list):
        return [x for x in (substitute(v, values, where) for v in node) if x is not _DROP]
    if not isinstance(node, str):
        return node
    whole = _PLACEHOLDER.fullmatch(node)
    try:
        if whole:
            value = _lookup(whole.group(1), values)
            return _DROP if value is None else _copy(value)

        def text(m: re.Match[str]) -> str:
            value = _lookup(m.group(1), values)
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise TypeError(m.group(1))
            return str(value)

        return _PLACEHOLDER.sub(text, node)
    except KeyError as e:
        raise ConfigError(f"{where}: unknown placeholder ${{{e.args[0]}}}") from None
    except TypeError as e:
        raise ConfigError(
            f"{where}: ${{{e.args[0]}}} is not text and cannot sit inside a string"
        ) from None


def render_template(rel: str, values: dict[str, Any]) -> Any:
    return substitute(_load(rel), values, where=f"argocd/{rel}")
