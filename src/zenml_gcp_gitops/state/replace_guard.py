"""Stateful resources are never replaced or deleted by surprise.

A config change or a provider upgrade can turn an update into a replacement, and replacing the
SQL instance, a bucket, the image repository, a secret or the KMS key loses what it holds.
`deploy` reads the preview's steps first; `blocked(steps, allowed)` names every stateful
resource that would be replaced or deleted and that `--allow-replace TYPE:NAME` (or `all`)
does not cover. The program also marks these resources `protect` (see `protect_resource`),
so even a plain `pulumi up` outside this tool cannot delete them.

Resources are named `Type:name`: the last part of the Pulumi type token and the resource's
logical name in the program (the last part of its URN), e.g. `DatabaseInstance:instance`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, UserError

# A new stateful resource joins the guard (and gets `protect`) by adding its type here.
STATEFUL_TYPES: frozenset[str] = frozenset(
    {
        "gcp:sql/databaseInstance:DatabaseInstance",
        "gcp:sql/database:Database",
        "gcp:storage/bucket:Bucket",
        "gcp:artifactregistry/repository:Repository",
        "gcp:secretmanager/secret:Secret",
        "gcp:kms/keyRing:KeyRing",
        "gcp:kms/cryptoKey:CryptoKey",
    }
)

# Engine step ops that end the life of an existing resource.
REPLACE_OPS = frozenset({"replace", "create-replacement", "delete-replaced", "discard-replaced"})
DELETE_OPS = frozenset({"delete", "discard"})
ALL = "all"
# The engine's message when a protected resource would be replaced or deleted.
_PROTECTED_MARK = "marked for protection"
# Where the cloud-side name of each stateful type lives in its inputs (shown next to the key).
_CLOUD_NAME = ("name", "repositoryId", "secretId")


def short_type(token: str) -> str:
    return token.rsplit(":", 1)[-1]


def resource_key(token: str, name: str) -> str:
    """`Type:name` as the user writes it after --allow-replace."""
    return f"{short_type(token)}:{name}"


@dataclass(frozen=True)
class Change:
    """One stateful resource the preview would replace or delete."""

    type: str  # the full type token
    name: str  # the logical name (last part of the URN)
    action: str  # "replace" | "delete"
    cloud_name: str | None = None

    @property
    def key(self) -> str:
        return resource_key(self.type, self.name)

    def describe(self) -> str:
        where = f" ({self.cloud_name})" if self.cloud_name and self.cloud_name != self.name else ""
        return f"{self.action} {self.key}{where}"


def parse_allow(values: Iterable[str]) -> frozenset[str]:
    """`--allow-replace` values, normalised (`all`, or lower-cased `type:name`)."""
    out: set[str] = set()
    for raw in values:
        v = raw.strip()
        if v.lower() == ALL:
            out.add(ALL)
            continue
        typ, sep, name = v.rpartition(":")
        if not sep or not typ or not name or any(c.isspace() for c in v):
            raise ConfigError(
                f"--allow-replace '{raw}' is not TYPE:NAME or 'all'",
                "use the names deploy printed, e.g. --allow-replace DatabaseInstance:instance",
            )
        out.add(f"{short_type(typ).lower()}:{name.lower()}")
    return frozenset(out)


def is_allowed(key: str, allowed: frozenset[str]) -> bool:
    return ALL in allowed or key.lower() in allowed


def _value(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _cloud_name(meta: Any) -> str | None:
    for side in ("old", "new"):
        inputs = _value(_value(meta, side), "inputs") or {}
        for key in _CLOUD_NAME:
            value = inputs.get(key) if isinstance(inputs, dict) else None
            if isinstance(value, str) and value:
                return value.rsplit("/", 1)[-1]
    return None


def change_of(op: str, token: str, urn: str, meta: Any = None) -> Change | None:
    """The stateful change a step makes, or None for any other step."""
    if token not in STATEFUL_TYPES:
        return None
    if op in REPLACE_OPS:
        action = "replace"
    elif op in DELETE_OPS:
        action = "delete"
    else:
        return None
    return Change(token, urn.rsplit("::", 1)[-1], action, _cloud_name(meta))


class StepCollector:
    """An `on_event` callback that keeps every stateful replace/delete of a preview.

    A protected resource makes the engine report an error instead of (or as well as) the
    step; that diagnostic counts as a replacement of the resource it names.
    """

    def __init__(self, then: Any = None) -> None:
        self.changes: list[Change] = []
        self._then = then

    def __call__(self, event: Any) -> None:
        pre = getattr(event, "resource_pre_event", None)
        if pre is not None:
            md = pre.metadata
            change = change_of(getattr(md.op, "value", str(md.op)), md.type, md.urn, md)
            if change is not None:
                self.changes.append(change)
        diag = getattr(event, "diagnostic_event", None)
        if diag is not None and diag.urn and _PROTECTED_MARK in (diag.message or ""):
            token = diag.urn.split("::")[2].split("$")[-1] if diag.urn.count("::") >= 3 else ""
            action = "delete" if "unable to delete" in diag.message else "replace"
            change = change_of("replace" if action == "replace" else "delete", token, diag.urn)
            if change is not None:
                self.changes.append(change)
        if self._then is not None:
            self._then(event)


def stateful_changes(changes: Iterable[Change]) -> list[Change]:
    """Each resource once (a replacement is several steps), in the order the engine saw them."""
    seen: dict[str, Change] = {}
    for c in changes:
        if c.key not in seen or (c.cloud_name and not seen[c.key].cloud_name):
            seen[c.key] = c
    return list(seen.values())


def blocked(changes: Iterable[Change], allowed: frozenset[str]) -> list[Change]:
    return [c for c in stateful_changes(changes) if not is_allowed(c.key, allowed)]


def refusal(changes: list[Change]) -> UserError:
    names = ", ".join(c.describe() for c in changes)
    flags = " ".join(f"--allow-replace {c.key}" for c in changes)
    return UserError(
        f"the preview would replace or delete {len(changes)} stateful resource(s), losing "
        f"their data: {names}; nothing was changed",
        f"if that is intended, back up their data and re-run with {flags} (or --allow-replace all)",
    )


# --------------------------------------------------------------------------- protect in the program

_ALLOWED: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "zgg_allow_replace", default=frozenset()
)
_PROTECTION: contextvars.ContextVar[bool] = contextvars.ContextVar("zgg_protect", default=True)


@contextlib.contextmanager
def allowing(allowed: frozenset[str]) -> Iterator[None]:
    """While the program runs: resources in `allowed` are registered without `protect`."""
    token = _ALLOWED.set(allowed)
    try:
        yield
    finally:
        _ALLOWED.reset(token)


def set_protection(on: bool) -> None:
    """The program sets this from `deletion_protection`, which `destroy --force` turns off."""
    _PROTECTION.set(on)


def protect_resource(token: str, name: str) -> bool | None:
    """The `protect` option for a resource: True for stateful ones while protection is on,
    unless --allow-replace names them; None (leave it alone) for every other type."""
    if token not in STATEFUL_TYPES:
        return None
    return _PROTECTION.get() and not is_allowed(resource_key(token, name), _ALLOWED.get())
