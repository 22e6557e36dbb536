"""Cloud DNS: the A records of the two hostnames, in an existing zone or one made here.

The records are owned by the stack, so `destroy` removes them. An existing zone is only
referenced by name and never touched; a zone made here (`create_dns_zone`) is the stack's and
goes with it. With cert-manager's DNS-01 solver, a dedicated account gets `dns.admin` on this
zone only, and cert-manager's Kubernetes service account impersonates it (Workload Identity).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from ._base import Component

RECORD_TTL = 300  # short, so a changed IP is seen within minutes


@dataclass(frozen=True)
class DnsArgs:
    project: str  # the deployment's project (the DNS-01 account lives here)
    zone_project: str  # the zone's project (may be another one)
    zone: str
    create_zone: bool
    domain: str
    records: dict[str, str]  # app -> FQDN with the trailing dot
    ingress_ip: pulumi.Input[str]
    labels: dict[str, str]
    dns01_account: str | None = None  # None: HTTP-01, no account
    dns01_member: str | None = None  # cert-manager's workload identity member
    # the workload identity pool exists once the cluster does
    cluster: pulumi.Resource | None = None


class Dns(Component):
    def __init__(self, name: str, args: DnsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Dns", name, opts)
        zp = args.zone_project
        self.zone: gcp.dns.ManagedZone | None = None
        if args.create_zone:
            self.zone = gcp.dns.ManagedZone(
                "zone",
                name=args.zone,
                project=zp,
                dns_name=f"{args.domain}.",
                visibility="public",
                description=f"{args.domain}, managed by zenml-gcp-gitops",
                labels=args.labels,
                opts=self.child(),
            )
            self.zone_name: pulumi.Output[str] = self.zone.name
            self.name_servers: pulumi.Output[list[str] | None] = self.zone.name_servers.apply(
                lambda ns: list(ns) if ns else None
            )
        else:
            self.zone_name = pulumi.Output.from_input(args.zone)
            self.name_servers = pulumi.Output.from_input(None)
        self.records = {
            app: gcp.dns.RecordSet(
                f"a-{app}",
                name=fqdn,
                managed_zone=self.zone_name,
                project=zp,
                type="A",
                ttl=RECORD_TTL,
                rrdatas=[args.ingress_ip],
                opts=self.child(),
            )
            for app, fqdn in args.records.items()
        }
        self.dns01_email: pulumi.Output[str] | None = None
        if args.dns01_account and args.dns01_member:
            account = gcp.serviceaccount.Account(
                "dns01",
                account_id=args.dns01_account,
                project=args.project,
                display_name="cert-manager DNS-01 (Cloud DNS)",
                opts=self.child(),
            )
            gcp.dns.DnsManagedZoneIamMember(
                "dns01-zone-admin",
                project=zp,
                managed_zone=self.zone_name,
                role="roles/dns.admin",
                member=account.member,
                opts=self.child(),
            )
            gcp.serviceaccount.IAMMember(
                "dns01-workload-identity",
                service_account_id=account.name,
                role="roles/iam.workloadIdentityUser",
                member=args.dns01_member,
                opts=self.child([args.cluster] if args.cluster is not None else []),
            )
            self.dns01_email = account.email
        self.register_outputs({"zone": self.zone_name, "name_servers": self.name_servers})
