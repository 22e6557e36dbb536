"""Who owns a custom flavor on a server, and which release of this package wrote it.

    ours(source) -> bool                   a source this package registers (now or in 0.1)
    mark(schema) -> Mark                   the owner mark in a flavor's config schema
    upsert(cur_schema, cur_source, req_schema, req_source, owner, name) -> Upsert
    release(store, flavor_spec, owner) -> (removed, kept)     the teardown of one owner

One flavor serves every deployment on a server. Its config schema carries, under the
`x-zenml-gcp-gitops` key, the stacks that use it and the package version that wrote the
schema. Only a newer release rewrites schema and source, so two versions never flip it back
and forth; an older one only adds itself as an owner. The last owner's teardown deletes the
flavor when no component uses it; otherwise the flavor stays and the line says who holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..flavors import (
    BUILD_ACCOUNT_FLAVOR_SOURCE,
    DISTRIBUTION,
    LEGACY_FLAVOR_SOURCES,
    OWNER_KEY,
    VERSION,
)

if TYPE_CHECKING:
    from .stack_spec import FlavorSpec


def ours(source: str | None) -> bool:
    return source in (BUILD_ACCOUNT_FLAVOR_SOURCE, *LEGACY_FLAVOR_SOURCES)


@dataclass(frozen=True)
class Mark:
    version: str | None  # None: registered before the mark existed (0.1) or by hand
    owners: tuple[str, ...] = ()


def mark(schema: dict[str, Any] | None) -> Mark:
    raw = (schema or {}).get(OWNER_KEY)
    if not isinstance(raw, dict):
        return Mark(None)
    version = raw.get("version")
    owners = raw.get("owners")
    return Mark(
        str(version) if version else None,
        tuple(sorted({str(o) for o in owners})) if isinstance(owners, list) else (),
    )


def body(schema: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (schema or {}).items() if k != OWNER_KEY}


def marked(schema: dict[str, Any] | None, version: str | None, owners: set[str]) -> dict[str, Any]:
    out = body(schema)
    out[OWNER_KEY] = {"package": DISTRIBUTION, "version": version, "owners": sorted(owners)}
    return out


def _newer(a: str, b: str | None) -> int:
    """-1, 0 or 1 as release `a` is older, the same or newer than `b` (None: oldest)."""
    from packaging.version import InvalidVersion, Version

    if b is None:
        return 1
    try:
        va, vb = Version(a), Version(b)
    except InvalidVersion:
        return 0 if a == b else 1
    return (va > vb) - (va < vb)


@dataclass
class Upsert:
    """What to write for an existing flavor: None fields mean "leave as it is"."""

    schema: dict[str, Any] | None = None
    source: str | None = None
    note: str | None = None

    def changes(self) -> dict[str, Any]:
        return {"config_schema": self.schema, "source": self.source}


def upsert(
    cur_schema: dict[str, Any] | None,
    cur_source: str | None,
    req_schema: dict[str, Any],
    req_source: str,
    owner: str,
    name: str,
) -> Upsert:
    m = mark(cur_schema)
    owners = {*m.owners, owner}
    out = Upsert()
    if _newer(VERSION, m.version) >= 0:
        want = marked(req_schema, VERSION, owners)
        if cur_source != req_source:
            out.source = req_source
    else:
        want = marked(cur_schema, m.version, owners)
        out.note = (
            f"kept flavor {name} as zenml-gcp-gitops {m.version} wrote it (this is "
            f"{VERSION}, older); only added {owner} to its owners"
        )
    if want != cur_schema:
        out.schema = want
    return out


def release(store: Any, f: FlavorSpec, owner: str) -> tuple[list[str], list[str]]:
    """Drop `owner` from the flavor's mark; delete the flavor when no component uses it.

    Returns (removed, kept) lines. A flavor of the same name from another source is not ours
    and is never touched."""
    from zenml.models import ComponentFilter, FlavorFilter, FlavorUpdate

    from .secrets import first

    cur = first(store.list_flavors(FlavorFilter(name=f.name, type=f.type), hydrate=True))
    if cur is None or not ours(cur.source):
        return [], []
    m = mark(cur.config_schema)
    users = list(
        store.list_stack_components(ComponentFilter(flavor=f.name, type=f.type, size=50)).items
    )
    if not users:
        store.delete_flavor(cur.id)
        return [f"flavor:{f.name}"], []
    left = set(m.owners) - {owner}
    if owner in m.owners:
        store.update_flavor(
            cur.id, FlavorUpdate(config_schema=marked(cur.config_schema, m.version, left))
        )
    names = ", ".join(sorted(c.name for c in users))
    return [], [f"kept flavor {f.name}: components still use it ({names})"]
