"""Cloud DNS for `--domain`: preflight checks of the zone, and the wait for public resolution.

Preflight asks Cloud DNS (through `CloudDnsApi`, on the google-cloud-dns client library)
whether the zone exists, whether its DNS name is a suffix of the domain, and whether the caller
may edit it. Before the gitops phase lets cert-manager request certificates, `wait_for_records`
polls a public resolver until the A records point at the stack's IP; the resolver is
injectable (`Resolver`), by default Google's DNS-over-HTTPS JSON API.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import UserError
from .errors import describe, expired_login_is_one_line, is_service_disabled

if TYPE_CHECKING:
    from ..config import DeploymentConfig

DOH_URL = "https://dns.google/resolve"
# What editing the records needs; DNS-01 also grants dns.admin on the zone to its account.
RECORD_PERMISSIONS = (
    "dns.managedZones.get",
    "dns.resourceRecordSets.create",
    "dns.resourceRecordSets.update",
    "dns.resourceRecordSets.delete",
    "dns.changes.create",
)
DNS01_PERMISSIONS = ("dns.managedZones.setIamPolicy",)
CREATE_ZONE_PERMISSIONS = ("dns.managedZones.create",)


class DnsApiDisabled(UserError):
    """The Cloud DNS API is off in the zone's project (so no zone can be there yet)."""


@dataclass(frozen=True)
class Zone:
    """What preflight needs of a managed zone."""

    dns_name: str
    visibility: str = "public"
    name_servers: tuple[str, ...] = ()


class CloudDnsApi:
    """The Cloud DNS calls preflight makes, through google-cloud-dns. `client_for(project)`
    is that library's `Client` for a project (preflight's `GcpApi.dns`)."""

    def __init__(self, client_for: Callable[[str], Any]) -> None:
        self._client_for = client_for

    def get_zone(self, project: str, zone: str) -> Zone | None:
        """The zone, or None when it does not exist (or is invisible to the caller)."""
        from google.api_core import exceptions as gexc

        found = self._client_for(project).zone(zone)
        try:
            with expired_login_is_one_line():
                found.reload()
        except gexc.NotFound:
            return None
        except gexc.Forbidden as e:
            if is_service_disabled(e):
                raise DnsApiDisabled(
                    f"the Cloud DNS API is disabled in project {project}, so the zone {zone} "
                    "cannot be there",
                    "check --dns-zone (project/zone for a zone in another project), or use "
                    "--create-dns-zone",
                ) from None
            return None  # Cloud DNS answers 403 for zones the caller may not see
        except gexc.GoogleAPICallError as e:
            raise UserError(
                f"could not read the Cloud DNS zone {project}/{zone}: {describe(e)}"
            ) from None
        # The library keeps the API's resource but has no property for its visibility.
        visibility = str(found._properties.get("visibility") or "public")
        return Zone(str(found.dns_name or ""), visibility, tuple(found.name_servers or ()))

    def missing_permissions(
        self, project: str, zone: str, permissions: tuple[str, ...]
    ) -> list[str]:
        from google.api_core import exceptions as gexc

        client = self._client_for(project)
        try:
            with expired_login_is_one_line():
                # google-cloud-dns has no method for a zone's testIamPermissions; its own
                # connection makes the call (the library's auth, endpoint and typed errors).
                resp = client._connection.api_request(
                    method="POST",
                    path=f"/projects/{project}/managedZones/{zone}:testIamPermissions",
                    data={"permissions": list(permissions)},
                )
        except gexc.GoogleAPICallError as e:
            raise UserError(
                f"could not test your permissions on the zone {project}/{zone}: {describe(e)}"
            ) from None
        granted = set(resp.get("permissions", []))
        return [p for p in permissions if p not in granted]

    def list_records(self, project: str, zone: str) -> list[Any]:
        """Every record set in the zone (google-cloud-dns `ResourceRecordSet`s)."""
        from google.api_core import exceptions as gexc

        try:
            with expired_login_is_one_line():
                return list(self._client_for(project).zone(zone).list_resource_record_sets())
        except gexc.NotFound:
            return []
        except gexc.GoogleAPICallError as e:
            raise UserError(
                f"could not list the records of the zone {project}/{zone}: {describe(e)}"
            ) from None

    def delete_records(self, project: str, zone: str, records: list[Any]) -> None:
        """Delete `records` (as listed) in one change."""
        from google.api_core import exceptions as gexc

        if not records:
            return
        change = self._client_for(project).zone(zone).changes()
        for r in records:
            change.delete_record_set(r)
        try:
            with expired_login_is_one_line():
                change.create()
        except gexc.GoogleAPICallError as e:
            raise UserError(
                f"could not delete records in the zone {project}/{zone}: {describe(e)}"
            ) from None


def label(record: Any) -> str:
    return f"{record.name} {record.record_type}"


def zone_leftovers(
    zone_dns_name: str, ours: set[tuple[str, str]], hosts: list[str], records: list[Any]
) -> tuple[list[Any], list[Any]]:
    """(records of ours Pulumi does not hold, foreign records) of a zone the stack made.

    Cloud DNS deletes a zone only when it holds nothing but its apex SOA and NS. Pulumi
    deletes the stack's records itself (`ours`: name and type); cert-manager's DNS-01
    solver, run by the stack, may leave `_acme-challenge.<host>` TXT records behind. Anything
    else someone added.
    """
    apex = zone_dns_name.lower()
    challenges = {f"_acme-challenge.{h.lower().rstrip('.')}." for h in hosts}
    extra, foreign = [], []
    for r in records:
        name, typ = str(r.name).lower(), str(r.record_type)
        if (name == apex and typ in ("SOA", "NS")) or (name, typ) in ours:
            continue
        if typ == "TXT" and name in challenges:
            extra.append(r)
        else:
            foreign.append(r)
    return extra, foreign


def zone_covers(zone_dns_name: str, domain: str) -> bool:
    """Is the zone's DNS name (`example.com.`) the domain itself or a suffix of it?"""
    zone = zone_dns_name.lower().rstrip(".")
    d = domain.lower().rstrip(".")
    return d == zone or d.endswith("." + zone)


def check_dns(
    cfg: DeploymentConfig,
    dns: CloudDnsApi,
    missing_project_permissions: Callable[[str, tuple[str, ...]], list[str]],
) -> dict[str, Any]:
    """Preflight for `dns_zone` / `create_dns_zone`: raises a `UserError` naming the fix."""
    n = cfg.names
    if not n.dns_zone or not cfg.domain:
        return {}
    zp, zone = n.dns_zone_project, n.dns_zone
    out: dict[str, Any] = {
        "dns_zone": f"{zp}/{zone}",
        "dns_records": sorted(n.dns_records.values()),
    }
    if cfg.create_dns_zone:
        missing = missing_project_permissions(zp, CREATE_ZONE_PERMISSIONS)
        if missing:
            raise UserError(
                f"your account cannot create Cloud DNS zones in {zp} ({', '.join(missing)})",
                "ask for roles/dns.admin on the project, or pass --dns-zone with an existing zone",
            )
        try:
            existing = dns.get_zone(zp, zone)
        except DnsApiDisabled:  # a fresh project: the program enables the API, then creates
            existing = None
        if existing is not None and not zone_covers(existing.dns_name, cfg.domain):
            raise UserError(
                f"the zone {zp}/{zone} already exists for {existing.dns_name}, not {cfg.domain}.",
                "delete it, or choose another --name",
            )
        out["dns_zone_action"] = "exists" if existing is not None else "will create"
        return out
    found = dns.get_zone(zp, zone)
    if found is None:
        raise UserError(
            f"the Cloud DNS zone {zone} does not exist in project {zp} (or you cannot see it)",
            "list zones with `gcloud dns managed-zones list --project "
            f"{zp}`; use project/zone for a zone in another project, or --create-dns-zone",
        )
    dns_name = found.dns_name
    if not zone_covers(dns_name, cfg.domain):
        raise UserError(
            f"the zone {zp}/{zone} serves {dns_name}, which is not a suffix of {cfg.domain}",
            f"choose a zone for {cfg.domain} or one of its parents, or another --domain",
        )
    if found.visibility.lower() != "public":
        raise UserError(
            f"the zone {zp}/{zone} is private: the internet (and Let's Encrypt) cannot see it",
            "use a public zone for the domain",
        )
    wanted = RECORD_PERMISSIONS + (DNS01_PERMISSIONS if cfg.acme_challenge == "dns01" else ())
    missing = dns.missing_permissions(zp, zone, wanted)
    if missing:
        raise UserError(
            f"your account cannot edit the zone {zp}/{zone} (missing {', '.join(missing)})",
            f"ask for roles/dns.admin on the zone or on project {zp}",
        )
    out["dns_zone_action"] = "exists"
    out["dns_zone_name"] = dns_name
    out["dns_name_servers"] = list(found.name_servers)
    return out


# --------------------------------------------------------------------------- resolution


class Resolver(Protocol):
    def resolve_a(self, name: str) -> list[str]:
        """The A records a public resolver returns for `name` (empty when none)."""
        ...


class DohResolver:
    """Google Public DNS's JSON API (`/resolve?name=&type=A`): what the internet sees,
    without the caller's own resolver or its cache in between."""

    def __init__(self, url: str = DOH_URL, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout

    def resolve_a(self, name: str) -> list[str]:
        query = urllib.parse.urlencode({"name": name, "type": "A"})
        req = urllib.request.Request(
            f"{self.url}?{query}", headers={"Accept": "application/dns-json"}
        )
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            data = json.loads(resp.read().decode())
        if data.get("Status") != 0:  # NXDOMAIN (3), SERVFAIL (2), ...
            return []
        return [str(a["data"]) for a in data.get("Answer") or [] if a.get("type") == 1]


def wait_for_records(
    hosts: dict[str, str],
    resolver: Resolver,
    *,
    timeout: float,
    interval: float = 10.0,
    reporter: Any = None,
    name_servers: list[str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, list[str]]:
    """Poll until every host resolves to its IP; a `UserError` after `timeout` seconds."""
    deadline = clock() + timeout
    seen: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    while True:
        pending = []
        for host, ip in hosts.items():
            try:
                seen[host] = resolver.resolve_a(host)
                errors.pop(host, None)
            except (OSError, ValueError) as e:  # unreachable or garbled: retry until the deadline
                errors[host] = f"{e.__class__.__name__}: {e}"
                seen[host] = []
            if ip not in seen[host]:
                pending.append(host)
        if not pending:
            return seen
        if clock() >= deadline:
            break
        if reporter is not None:
            reporter.step(f"Waiting for public DNS: {', '.join(pending)}")
        sleep(interval)
    lines = []
    for host in pending:
        got = ", ".join(seen.get(host) or []) or "nothing"
        lines.append(f"{host} resolves to {got}" + (f" ({errors[host]})" if host in errors else ""))
    hint = "check the records in Cloud DNS"
    if name_servers:
        hint = (
            "set the domain's NS records at your registrar to "
            f"{', '.join(ns.rstrip('.') for ns in name_servers)}"
        )
    wanted = ", ".join(f"{h} -> {ip}" for h, ip in hosts.items())
    raise UserError(
        f"public DNS does not show {wanted} after {timeout:.0f}s: {'; '.join(lines)}",
        f"{hint}; re-run `zenml-gcp-gitops deploy` to resume (or --skip-dns-wait to go on)",
    )
