"""A fake Cloud DNS REST API (v1) behind the fake AuthorizedSession of `FakeGcp`.

It answers what preflight asks: `GET projects/P/managedZones/Z` (404 when absent, 403
SERVICE_DISABLED when the API is off in that project) and `:testIamPermissions` on a zone.
Every other URL goes to the wrapped `FakeGcp`, so the product's real `GcpApi` and
`CloudDnsApi` run unchanged against one fake session.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.google_clients import FakeGcp, FakeResponse, _err

_ZONE = re.compile(
    r"^https://dns\.googleapis\.com/dns/v1/projects/([^/]+)/managedZones/([^/:]+)(:testIamPermissions)?$"
)


@dataclass
class FakeZone:
    dns_name: str
    visibility: str = "public"
    name_servers: tuple[str, ...] = ("ns-cloud-a1.example.net.", "ns-cloud-a2.example.net.")
    # permissions the caller lacks on this zone
    missing: tuple[str, ...] = ()


@dataclass
class FakeCloudDns:
    gcp: FakeGcp
    zones: dict[tuple[str, str], FakeZone] = field(default_factory=dict)
    api_disabled_in: set[str] = field(default_factory=set)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def request(
        self, method: str, url: str, json: Any = None, timeout: float | None = None, **kw: Any
    ) -> FakeResponse:
        m = _ZONE.match(url)
        if m is None:
            return self.gcp.request(method, url, json=json, timeout=timeout, **kw)
        self.requests.append((method, url))
        project, zone, test = m.groups()
        if project in self.api_disabled_in:
            return _err(
                403,
                "PERMISSION_DENIED",
                f"Cloud DNS API has not been used in project {project} before or it is disabled.",
                "SERVICE_DISABLED",
            )
        found = self.zones.get((project, zone))
        if found is None:
            return _err(
                404,
                "NOT_FOUND",
                f"The 'parameters.managedZone' resource named '{zone}' does not exist.",
            )
        if test:
            wanted = (json or {}).get("permissions", [])
            return FakeResponse(200, {"permissions": [p for p in wanted if p not in found.missing]})
        if method != "GET":
            return _err(400, "INVALID_ARGUMENT", f"fake has no route for {method} {url}")
        return FakeResponse(
            200,
            {
                "kind": "dns#managedZone",
                "name": zone,
                "dnsName": found.dns_name,
                "visibility": found.visibility,
                "nameServers": list(found.name_servers),
            },
        )

    def api(self, cfg: Any) -> Any:
        """The product's `GcpApi`, on this session (DNS routes here, the rest to `FakeGcp`)."""
        from zenml_gcp_gitops.phases.preflight import GcpApi

        return GcpApi(
            cfg,
            credentials_fn=self.gcp.default,
            session=self,
            storage_client=self.gcp.storage,
            kms_client=self.gcp.kms,
            poll_interval=0,
        )
