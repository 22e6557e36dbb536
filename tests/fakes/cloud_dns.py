"""A fake Cloud DNS API (v1) under the real google-cloud-dns library.

`FakeCloudDns.client_for(project)` is a real `google.cloud.dns.Client` whose HTTP session is
this fake, so the library's own URLs, auth headers and error parsing run unchanged. It
answers only methods Cloud DNS documents (its discovery document), and of those what
preflight asks: `GET projects/P/managedZones/Z` (404 when absent, 403
SERVICE_DISABLED when the API is off in that project) and `:testIamPermissions` on a zone.
`FakeCloudDns.api(cfg)` is the product's real `GcpApi`, with Cloud DNS here and every other
client from the wrapped `FakeGcp`.
"""

from __future__ import annotations

import json as jsonlib
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import requests

from tests.fakes.google_clients import FakeGcp, error_body, http_response

_ZONE = re.compile(
    r"^https://dns\.googleapis\.com/dns/v1/projects/([^/]+)/managedZones/([^/:]+)"
    r"(:testIamPermissions|/rrsets|/changes)?$"
)


@dataclass
class FakeZone:
    dns_name: str
    visibility: str = "public"
    name_servers: tuple[str, ...] = ("ns-cloud-a1.example.net.", "ns-cloud-a2.example.net.")
    # permissions the caller lacks on this zone
    missing: tuple[str, ...] = ()
    # record sets as the API returns them: {"name", "type", "ttl", "rrdatas"}
    records: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.records:  # every zone has its apex SOA and NS
            ns = list(self.name_servers)
            soa = f"{ns[0]} cloud-dns-hostmaster.google.com. 1 21600 3600 259200 300"
            self.records = [
                {"name": self.dns_name, "type": "NS", "ttl": 21600, "rrdatas": ns},
                {"name": self.dns_name, "type": "SOA", "ttl": 21600, "rrdatas": [soa]},
            ]


@dataclass
class FakeCloudDns:
    gcp: FakeGcp
    zones: dict[tuple[str, str], FakeZone] = field(default_factory=dict)
    api_disabled_in: set[str] = field(default_factory=set)
    # (method, url without the query string) of every call the library made
    requests: list[tuple[str, str]] = field(default_factory=list)
    # requests Cloud DNS would refuse for their shape (no such method, a bad body)
    refused: list[str] = field(default_factory=list)

    def client_for(self, project: str) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import dns

        return dns.Client(project=project, credentials=AnonymousCredentials(), _http=self)

    # the HTTP session face google-cloud-dns calls
    def request(
        self,
        method: str,
        url: str,
        data: Any = None,
        headers: Any = None,
        timeout: Any = None,
        **_: Any,
    ) -> requests.Response:
        self.gcp.enter("dns", url)
        path = urllib.parse.urlsplit(url)._replace(query="").geturl()
        self.requests.append((method, path))

        def reply(code: int, body: dict[str, Any]) -> requests.Response:
            return http_response(code, body, method, url)

        from tests.fakes.discovery import check_body, find_method

        mid = find_method("dns", "v1", method, urllib.parse.urlsplit(url).path)
        if mid is None:  # Cloud DNS has no such method
            self.refused.append(f"{method} {path}")
            return reply(
                404, error_body(404, "NOT_FOUND", f"The requested URL {path} was not found.")
            )
        problems = check_body("dns", "v1", mid, jsonlib.loads(data) if data else None)
        if problems:
            self.refused += problems
            return reply(400, error_body(400, "INVALID_ARGUMENT", "; ".join(problems)))
        m = _ZONE.match(path)
        if m is None:
            return reply(404, error_body(404, "NOT_FOUND", f"fake has no route for {path}"))
        project, zone, test = m.groups()
        if project in self.api_disabled_in:
            return reply(
                403,
                error_body(
                    403,
                    "PERMISSION_DENIED",
                    f"Cloud DNS API has not been used in project {project} before or it is disabled.",
                    "SERVICE_DISABLED",
                    {"service": "dns.googleapis.com", "consumer": f"projects/{project}"},
                ),
            )
        found = self.zones.get((project, zone))
        if found is None:
            return reply(
                404,
                error_body(
                    404,
                    "NOT_FOUND",
                    f"The 'parameters.managedZone' resource named '{zone}' does not exist.",
                ),
            )
        if test == ":testIamPermissions":
            wanted = jsonlib.loads(data or "{}").get("permissions", [])
            return reply(200, {"permissions": [p for p in wanted if p not in found.missing]})
        if test == "/rrsets" and method == "GET":
            return reply(
                200, {"kind": "dns#resourceRecordSetsListResponse", "rrsets": found.records}
            )
        if test == "/changes" and method == "POST":
            body = jsonlib.loads(data or "{}")
            for key in ("additions", "deletions"):  # int64 travels as a JSON string
                body[key] = [{**r, "ttl": int(r["ttl"])} for r in body.get(key, [])]
            for d in body.get("deletions", []):
                if d not in found.records:  # the API deletes only an exact match
                    return reply(412, error_body(412, "FAILED_PRECONDITION", f"no such record {d}"))
            for d in body.get("deletions", []):
                found.records.remove(d)
            found.records.extend(body.get("additions", []))
            return reply(200, {"kind": "dns#change", "id": "1", "status": "done", **body})
        if method != "GET":
            return reply(400, error_body(400, "INVALID_ARGUMENT", f"no route for {method}"))
        return reply(
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
        """The product's `GcpApi`: Cloud DNS on this fake, the rest on `FakeGcp`'s."""
        return self.gcp.api(cfg, dns=self.client_for)
