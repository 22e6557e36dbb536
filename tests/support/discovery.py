"""Check a JSON body against Google's own API description (the discovery documents that
google-api-python-client ships): unknown fields, wrong types and values outside an enum fail."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any


@cache
def document(api: str, version: str) -> dict[str, Any]:
    import googleapiclient

    path = (
        Path(googleapiclient.__file__).parent
        / "discovery_cache"
        / "documents"
        / f"{api}.{version}.json"
    )
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def problems(api: str, version: str, schema: str, value: Any) -> list[str]:
    """Every place where `value` is not a valid `schema` of that API (empty: valid)."""
    doc = document(api, version)
    out: list[str] = []
    _check(doc["schemas"], {"$ref": schema}, value, schema, out)
    return out


def _check(
    schemas: dict[str, Any], spec: dict[str, Any], value: Any, at: str, out: list[str]
) -> None:
    if "$ref" in spec:
        spec = schemas[spec["$ref"]]
    kind = spec.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            out.append(f"{at}: expected an object, got {type(value).__name__}")
            return
        props = spec.get("properties", {})
        extra = spec.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                _check(schemas, props[key], item, f"{at}.{key}", out)
            elif extra is not None:
                _check(schemas, extra, item, f"{at}.{key}", out)
            else:
                out.append(f"{at}.{key}: no such field")
    elif kind == "array":
        if not isinstance(value, list):
            out.append(f"{at}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _check(schemas, spec["items"], item, f"{at}[{i}]", out)
    elif kind == "string":
        # int64/uint64 and google-duration travel as strings in JSON
        if not isinstance(value, str):
            out.append(f"{at}: expected a string, got {value!r}")
        elif "enum" in spec and value not in spec["enum"]:
            out.append(f"{at}: {value!r} is not one of {spec['enum']}")
    elif kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            out.append(f"{at}: expected an integer, got {value!r}")
    elif kind == "number":
        if not isinstance(value, int | float) or isinstance(value, bool):
            out.append(f"{at}: expected a number, got {value!r}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            out.append(f"{at}: expected a boolean, got {value!r}")
    elif kind == "any":
        pass
    else:
        out.append(f"{at}: schema type {kind!r} not understood")
