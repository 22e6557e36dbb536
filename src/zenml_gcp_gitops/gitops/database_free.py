"""The apps that need nothing from the database, rendered before the database exists.

A deploy starts Argo CD and these apps while `pulumi up` still creates Cloud SQL
(`phases/headstart.py`). Which apps they are is not declared but found: the stack is rendered
with stand-ins for the database outputs, and an app is database-free when none of them
appears anywhere in it. The same test on real outputs (`database_apps`) gives the plan's
estimate the apps that wait for the database.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..outputs import DATABASE_FIELDS, InfraOutputs

if TYPE_CHECKING:
    from ..config import DeploymentConfig
    from .render import Rendered

_PENDING = "pending-database-7f3a9c"  # appears in no name, host or value the stack renders


def overlap_possible(cfg: DeploymentConfig) -> bool:
    """Whether a deploy of `cfg` can start gitops before infra ends: not with a GitOps repo,
    whose app-of-apps Argo CD reads whole from the repository."""
    return not cfg.gitops_repo


def pending_database(handoff: dict[str, Any]) -> InfraOutputs:
    """The infra outputs with stand-ins where the database's will be."""
    project, region = handoff.get("project", "p"), handoff.get("region", "r")
    stand_ins = {
        "sql_instance": _PENDING,
        "sql_connection_name": f"{project}:{region}:{_PENDING}",
        "sql_private_ip": "192.0.2.173",  # TEST-NET-1 (RFC 5737): never a real address
        "sql_server_ca_cert": f"-----BEGIN CERTIFICATE-----\n{_PENDING}\n-----END CERTIFICATE-----\n",
    }
    assert set(stand_ins) == set(DATABASE_FIELDS)
    return InfraOutputs.from_mapping({**handoff, **stand_ins}, source="handoff outputs")


def database_apps(rendered: Rendered, outputs: InfraOutputs) -> list[str]:
    """The apps whose rendered manifests carry a database output (its address, connection
    name or server CA; the instance's name comes from the config): they cannot sync before
    the database exists."""
    marks = [outputs.sql_private_ip, outputs.sql_connection_name, outputs.sql_server_ca_cert]
    marks = [json.dumps(m)[1:-1] for m in marks if m]
    return [
        a.key
        for a in rendered.apps
        if any(m in json.dumps([a.manifest, a.objects], default=str) for m in marks)
    ]


def database_free(cfg: DeploymentConfig, handoff: dict[str, Any]) -> tuple[Rendered, InfraOutputs]:
    """The stack with only the apps that read no database output, and the outputs used."""
    from .render import render

    outputs = pending_database(handoff)
    full = render(cfg, outputs)
    needs = set(database_apps(full, outputs))
    keep = {a.key for a in full.apps if a.key not in needs}
    return render(cfg, outputs, keep=keep), outputs
