"""Errors of Google's REST APIs (the few calls made through an AuthorizedSession)."""

from __future__ import annotations

from typing import Any


def error_reason(resp: Any) -> str:
    """A REST error body in one line: status, ErrorInfo reasons and message."""
    try:
        err = resp.json().get("error", {})
    except ValueError:
        return f"HTTP {resp.status_code}"
    reasons = [d.get("reason", "") for d in err.get("details", []) if isinstance(d, dict)]
    return " ".join(x for x in [err.get("status", ""), *reasons, err.get("message", "")] if x)
