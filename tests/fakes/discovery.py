"""Google's discovery documents, as google-api-python-client ships them, used to check the
requests the product sends by hand: the method (HTTP verb + path template), the request body's
field names, types and enum values, and the fields a method requires.

    method = find_method("sqladmin", "v1", "POST", "/v1/projects/p/instances/i/export")
    problems = check_body("sqladmin", "v1", method, body)   # [] when Google would accept it
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any


@functools.cache
def document(api: str, version: str) -> dict[str, Any]:
    import googleapiclient

    path = Path(googleapiclient.__file__).parent / "discovery_cache/documents"
    doc: dict[str, Any] = json.loads((path / f"{api}.{version}.json").read_text())
    return doc


def _methods(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = list(node.get("methods", {}).values())
    for child in node.get("resources", {}).values():
        found += _methods(child)
    return found


def _template(path: str) -> re.Pattern[str]:
    """`v1/projects/{project}/instances/{instance}` or `v1/{+name}:access` -> a regex."""
    out = ""
    for part in re.split(r"(\{[^}]+\})", path):
        if part.startswith("{+"):
            out += r"[^:?]+"  # reserved expansion: may hold slashes
        elif part.startswith("{"):
            out += r"[^/:?]+"
        else:
            out += re.escape(part)
    return re.compile(out)


@functools.cache
def _flat(api: str, version: str) -> list[tuple[str, re.Pattern[str], str]]:
    doc = document(api, version)
    rows = []
    for m in _methods(doc):
        rows.append((m["httpMethod"], _template(m.get("flatPath") or m["path"]), m["id"]))
    return rows


def find_method(api: str, version: str, http_method: str, path: str) -> str | None:
    """The discovery method id that serves `http_method path` (path without the host), or None."""
    doc = document(api, version)
    rel = path.lstrip("/").removeprefix(doc.get("servicePath", "").lstrip("/"))
    hits = [
        mid for verb, rx, mid in _flat(api, version) if verb == http_method and rx.fullmatch(rel)
    ]
    # the most specific template wins (`.../versions/{v}:access` over `.../{+name}`)
    return max(hits, key=len) if hits else None


def _method(api: str, version: str, method_id: str) -> dict[str, Any]:
    for m in _methods(document(api, version)):
        if m["id"] == method_id:
            return m
    raise KeyError(method_id)


def check_body(api: str, version: str, method_id: str, body: Any) -> list[str]:
    """What Google would refuse in `body` for `method_id` (unknown or misspelt fields, values of
    the wrong type, values outside an enum, missing required fields); [] when none."""
    m = _method(api, version, method_id)
    ref = m.get("request", {}).get("$ref")
    if ref is None:
        return [] if body in (None, {}) else [f"{method_id} takes no request body"]
    if body is None:
        return [f"{method_id} needs a {ref} body"]
    return _check(document(api, version)["schemas"], {"$ref": ref}, body, ref, method_id)


def check_schema(api: str, version: str, schema: str, value: Any) -> list[str]:
    """What Google would refuse in `value` as a `schema` of that API (raw JSON a resource
    carries, such as a dashboard's `dashboardJson`); [] when none."""
    return _check(document(api, version)["schemas"], {"$ref": schema}, value, schema, "")


def _check(
    schemas: dict[str, Any], spec: dict[str, Any], value: Any, at: str, mid: str
) -> list[str]:
    if "$ref" in spec:
        spec = schemas[spec["$ref"]]
    kind = spec.get("type")
    if kind == "object" and "properties" in spec:
        if not isinstance(value, dict):
            return [f"{at}: expected an object, got {type(value).__name__}"]
        problems = []
        props = spec["properties"]
        for key, sub in value.items():
            if key not in props:
                problems.append(f'{at}: unknown field "{key}"')
            else:
                problems += _check(schemas, props[key], sub, f"{at}.{key}", mid)
        for key, sub in props.items():
            # older documents annotate it per method, newer ones say "Required." in the text
            needed = mid in sub.get("annotations", {}).get("required", ()) or sub.get(
                "description", ""
            ).startswith("Required.")
            if needed and key not in value:
                problems.append(f"{at}: required field {key} is missing")
        return problems
    if kind == "object":  # a map (additionalProperties) or a free-form object
        if not isinstance(value, dict):
            return [f"{at}: expected an object, got {type(value).__name__}"]
        extra = spec.get("additionalProperties")
        if extra:
            return [
                p for k, v in value.items() for p in _check(schemas, extra, v, f"{at}.{k}", mid)
            ]
        return []
    if kind == "array":
        if not isinstance(value, list):
            return [f"{at}: expected a list, got {type(value).__name__}"]
        return [
            p
            for i, v in enumerate(value)
            for p in _check(schemas, spec["items"], v, f"{at}[{i}]", mid)
        ]
    if kind == "string":
        # int64 and friends travel as strings, but JSON numbers are accepted for them
        if spec.get("format") in ("int64", "uint64") and isinstance(value, int):
            return []
        if not isinstance(value, str):
            return [f"{at}: expected a string, got {type(value).__name__}"]
        if "enum" in spec and value not in spec["enum"]:
            return [f"{at}: {value!r} is not one of {spec['enum']}"]
        return []
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{at}: expected a boolean"]
    if kind in ("integer", "number"):
        # proto3's JSON mapping also accepts a number as a string ("300"); Google's client
        # libraries send some that way (google-cloud-dns's ttl)
        if isinstance(value, str):
            try:
                float(value)
            except ValueError:
                return [f"{at}: expected a number, got {value!r}"]
            return []
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{at}: expected a number"]
    return []
