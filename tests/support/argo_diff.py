"""The part of Argo CD's diff that decides whether a re-rendered app is still in sync:
hooks are left out, and an Application's `ignoreDifferences` paths are removed before comparing.

`jsonPointers` are RFC 6901 pointers; `jqPathExpressions` are supported in the subset the
stack uses (`.a.b`, `.a["b/c"]`, `.list[]?.field`).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from tests.support.charts import is_hook

_JQ_TOKEN = re.compile(r'\.([A-Za-z_][A-Za-z0-9_]*)|\["([^"]+)"\]|\[\]\??')


def _group(obj: dict[str, Any]) -> str:
    api = obj.get("apiVersion", "")
    return api.split("/")[0] if "/" in api else ""


def _matches(rule: dict[str, Any], obj: dict[str, Any], namespace: str | None) -> bool:
    meta = obj.get("metadata", {})
    if rule.get("group", "") != _group(obj) or rule.get("kind") != obj.get("kind"):
        return False
    if "name" in rule and rule["name"] != meta.get("name"):
        return False
    return "namespace" not in rule or rule["namespace"] == namespace


def _drop_pointer(obj: Any, pointer: str) -> None:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.lstrip("/").split("/")]
    cur = obj
    for part in parts[:-1]:
        if isinstance(cur, list):
            cur = cur[int(part)] if part.isdigit() and int(part) < len(cur) else None
        elif isinstance(cur, dict):
            cur = cur.get(part)
        if cur is None:
            return
    if isinstance(cur, dict):
        cur.pop(parts[-1], None)


def _jq_tokens(expr: str) -> list[str | None]:
    """Keys, with None for `[]` (every element)."""
    tokens: list[str | None] = []
    pos = 0
    while pos < len(expr):
        m = _JQ_TOKEN.match(expr, pos)
        if m is None:
            raise ValueError(f"jq expression outside the supported subset: {expr}")
        tokens.append(m.group(1) or m.group(2))
        pos = m.end()
    return tokens


def _drop_jq(node: Any, tokens: list[str | None]) -> None:
    if not tokens:
        return
    head, rest = tokens[0], tokens[1:]
    if head is None:
        for item in node if isinstance(node, list) else []:
            _drop_jq(item, rest)
    elif isinstance(node, dict) and head in node:
        if rest:
            _drop_jq(node[head], rest)
        else:
            node.pop(head)


def without_ignored(
    obj: dict[str, Any], rules: list[dict[str, Any]], namespace: str | None = None
) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    for rule in rules:
        if not _matches(rule, obj, namespace):
            continue
        for pointer in rule.get("jsonPointers", []):
            _drop_pointer(out, pointer)
        for expr in rule.get("jqPathExpressions", []):
            _drop_jq(out, _jq_tokens(expr))
    return out


def _key(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = obj.get("metadata", {})
    return (_group(obj), obj["kind"], meta.get("namespace", ""), meta["name"])


def drift(
    first: list[dict[str, Any]],
    second: list[dict[str, Any]],
    rules: list[dict[str, Any]],
    namespace: str,
) -> list[str]:
    """What Argo CD would see as OutOfSync between two renders: '<kind>/<name>' entries."""
    a = {_key(o): o for o in first if not is_hook(o)}
    b = {_key(o): o for o in second if not is_hook(o)}
    changed = sorted(set(a) ^ set(b))
    for k in sorted(set(a) & set(b)):
        if without_ignored(a[k], rules, namespace) != without_ignored(b[k], rules, namespace):
            changed.append(k)
    return [f"{k[1]}/{k[3]}" for k in changed]
