"""Tests describe a run as one flat mapping; `typed()` splits it into the product's typed
parts: the user's flags (`RunOptions`), the injected fakes (`Services`) and `dry_run`.
An unknown key fails, so a misspelt one cannot go unnoticed."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from zenml_gcp_gitops.run_options import RunOptions, Services

_FLAGS = {f.name for f in fields(RunOptions)}
_SERVICES = {f.name for f in fields(Services)}


def typed(values: dict[str, Any], *, context: bool = True) -> dict[str, Any]:
    """Keyword arguments for `PhaseContext` (or, with context=False, for `Engine`)."""
    unknown = set(values) - _FLAGS - _SERVICES - {"dry_run"}
    assert not unknown, f"not a flag or a service: {sorted(unknown)}"
    out: dict[str, Any] = {
        "options": RunOptions(**{k: v for k, v in values.items() if k in _FLAGS}),
        "services": Services(**{k: v for k, v in values.items() if k in _SERVICES}),
    }
    if context:
        out["dry_run"] = bool(values.get("dry_run"))
    else:
        assert "dry_run" not in values, "the engine takes dry_run per deploy()"
    return out
