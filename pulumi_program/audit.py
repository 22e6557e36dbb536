"""Data Access audit logs: who read or wrote which object or secret, for after an incident."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from ._base import Component

# Admin Activity logs are always on; Data Access logs are off by default in GCP.
DATA_ACCESS_SERVICES: tuple[str, ...] = (
    "storage.googleapis.com",
    "secretmanager.googleapis.com",
)
LOG_TYPES: tuple[str, ...] = ("DATA_READ", "DATA_WRITE")


@dataclass(frozen=True)
class AuditArgs:
    project: str
    services: tuple[str, ...] = DATA_ACCESS_SERVICES


class Audit(Component):
    """One project audit config per service.

    GCP keeps one audit config per service and project, so this one replaces any other
    config for storage and secretmanager in the project (exempted members included), and
    `destroy` removes it. Turn it off (`data_access_logs: false`) where the project's audit
    configs are managed elsewhere, e.g. by an organisation policy.
    """

    def __init__(self, name: str, args: AuditArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Audit", name, opts)
        self.configs = [
            gcp.projects.IAMAuditConfig(
                f"data-access-{service.split('.')[0]}",
                project=args.project,
                service=service,
                audit_log_configs=[
                    gcp.projects.IAMAuditConfigAuditLogConfigArgs(log_type=t) for t in LOG_TYPES
                ],
                opts=self.child(),
            )
            for service in args.services
        ]
        self.register_outputs({"services": list(args.services)})
