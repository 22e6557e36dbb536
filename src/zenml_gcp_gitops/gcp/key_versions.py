"""The lifecycle of the CI key's versions in Secret Manager after a rotation.

    enforce(secrets, secret_id, last_rotated, retain_minutes, now=None) -> KeyVersions

ZenML keeps one previous key alive for the rotation's retain window; the stored copy of that
key must not outlive it. So each superseded version is disabled once its key is dead (the
window of the last rotation, or at once for anything older) and destroyed `GRACE` later,
when nothing can still need it. The current version (the newest enabled one, stored after
the last rotation) is never touched. Runs on every `ci-account` run and every `status`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

GRACE = timedelta(days=7)  # disabled versions stay restorable this long
_SKEW = timedelta(seconds=60)  # the server's clock vs Secret Manager's


@dataclass(frozen=True)
class SecretVersion:
    number: int
    state: str  # ENABLED | DISABLED | DESTROYED
    created: datetime


@dataclass
class KeyVersions:
    versions: list[dict[str, Any]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = []
        for v in self.versions:
            text = f"v{v['version']} {v['state'].lower()}"
            if v.get("current"):
                text += " (current)"
            elif v["state"] == "ENABLED" and v.get("disable_at"):
                text += f" until {v['disable_at'][:16]} UTC (retain window)"
            elif v["state"] == "DISABLED" and v.get("destroy_at"):
                text += f", destroyed after {v['destroy_at'][:16]} UTC"
            parts.append(text)
        return "key versions: " + ("; ".join(parts) if parts else "none stored")


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def enforce(
    secrets: Any,
    secret_id: str,
    last_rotated: datetime | None,
    retain_minutes: int | None,
    now: datetime | None = None,
    grace: timedelta = GRACE,
) -> KeyVersions:
    """Disable and destroy superseded versions that are due; report every version's state."""
    out = KeyVersions()
    if not hasattr(secrets, "versions"):  # a store without versions (the local files)
        return out
    now = _utc(now or datetime.now(UTC))
    rotated = _utc(last_rotated) if last_rotated else None
    retain = timedelta(minutes=retain_minutes or 0)
    live: list[SecretVersion] = sorted(
        (v for v in secrets.versions(secret_id) if v.state != "DESTROYED"),
        key=lambda v: v.number,
    )
    enabled = [v for v in live if v.state == "ENABLED"]
    current = enabled[-1] if enabled else None
    if current is not None and rotated is not None and _utc(current.created) < rotated - _SKEW:
        current = None  # rotated without storing (--show-key): the stored key is the old one
    for i, v in enumerate(live):
        if current is not None and v.number == current.number:
            out.versions.append({"version": v.number, "state": v.state, "current": True})
            continue
        newer = live[i + 1].created if i + 1 < len(live) else rotated
        superseded = _utc(newer) if newer else now
        by_last_rotation = rotated is not None and superseded >= rotated - _SKEW
        dies = superseded + (retain if by_last_rotation else timedelta(0))
        state = v.state
        if state == "ENABLED" and now >= dies:
            secrets.disable_version(secret_id, v.number)
            state = "DISABLED"
            out.log.append(f"disabled key version {v.number} of {secret_id} (its key is revoked)")
        if now >= dies + grace:
            secrets.destroy_version(secret_id, v.number)
            out.log.append(f"destroyed key version {v.number} of {secret_id}")
            continue
        out.versions.append(
            {
                "version": v.number,
                "state": state,
                "disable_at": dies.isoformat(),
                "destroy_at": (dies + grace).isoformat(),
            }
        )
    return out
