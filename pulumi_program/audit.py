"""Data Access audit logs: who read or wrote which object or secret, for after an incident."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from zenml_gcp_gitops.gcp.audit import DATA_ACCESS_SERVICES, LogConfigs, merged

from ._base import Component


@dataclass(frozen=True)
class AuditArgs:
    project: str
    services: tuple[str, ...] = DATA_ACCESS_SERVICES
    # what the project had for those services before the first deploy (read by preflight)
    prior: dict[str, LogConfigs] = field(default_factory=dict)


class Audit(Component):
    """One project audit config per service, merged with the one the project had.

    GCP keeps one audit config per service and project, and this resource replaces it: so
    it sets the union of the earlier config (exempted members included) and DATA_READ +
    DATA_WRITE, and sets nothing where the project already logs both. `destroy` deletes the
    config, then writes the earlier one back (`zenml_gcp_gitops.gcp.audit`).
    """

    def __init__(self, name: str, args: AuditArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Audit", name, opts)
        self.configs = []
        for service in args.services:
            configs = merged(args.prior.get(service))
            if configs is None:
                continue  # the project's own config already logs it: not ours to own
            self.configs.append(
                gcp.projects.IAMAuditConfig(
                    f"data-access-{service.split('.')[0]}",
                    project=args.project,
                    service=service,
                    audit_log_configs=[
                        gcp.projects.IAMAuditConfigAuditLogConfigArgs(
                            log_type=c["log_type"],
                            exempted_members=list(c["exempted_members"]) or None,
                        )
                        for c in configs
                    ],
                    opts=self.child(),
                )
            )
        self.register_outputs({"services": list(args.services)})
