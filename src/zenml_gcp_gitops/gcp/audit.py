"""Data Access audit logs on a project that may already have audit configs.

GCP keeps one audit config per service in the project's IAM policy, and the provider's
`IAMAuditConfig` replaces it whole. So preflight reads what the project had (`prior`), the
program writes the union of that and ours, and `destroy` puts `prior` back:

    merged(prior) -> the log configs to set, or None when `prior` already logs what we want
"""

from __future__ import annotations

from typing import Any

# Admin Activity logs are always on; Data Access logs are off by default in GCP.
DATA_ACCESS_SERVICES: tuple[str, ...] = (
    "storage.googleapis.com",
    "secretmanager.googleapis.com",
)
LOG_TYPES: tuple[str, ...] = ("DATA_READ", "DATA_WRITE")

# one service's audit log configs: [{"log_type": "DATA_READ", "exempted_members": [...]}]
LogConfigs = list[dict[str, Any]]


def merged(prior: LogConfigs | None) -> LogConfigs | None:
    """The project's configs for a service plus ours; None when it already has ours.

    Its exempted members stay exempted: they were someone's decision, and an exemption
    only narrows what a log type records.
    """
    prior = prior or []
    have = {c["log_type"] for c in prior}
    if prior and all(t in have for t in LOG_TYPES):
        return None
    return [*prior, *({"log_type": t, "exempted_members": []} for t in LOG_TYPES if t not in have)]


def restorable(prior: dict[str, LogConfigs]) -> dict[str, LogConfigs]:
    """The services whose earlier config the program replaced (by a merge) and `destroy`
    must write back; a service it left alone, or had none, needs nothing."""
    return {s: c for s, c in prior.items() if c and merged(c) is not None}
