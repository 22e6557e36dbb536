"""`GcpApi` against fakes of the Google Cloud client libraries: each typed error the libraries
raise (made the way their REST transport makes it) becomes one line naming the fix."""

from __future__ import annotations

from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.rpc import error_details_pb2

from tests.fakes.cloud_dns import FakeCloudDns, FakeZone
from tests.fakes.google_clients import FakeGcp, http_error, service_disabled
from zenml_gcp_gitops.config import DeploymentConfig, build_config
from zenml_gcp_gitops.errors import UserError
from zenml_gcp_gitops.gcp.api import GcpApi
from zenml_gcp_gitops.gcp.dns import CloudDnsApi
from zenml_gcp_gitops.gcp.errors import describe, error_info, is_service_disabled

PROJECT = "my-project-1"
STATE = ("storage.googleapis.com", "cloudkms.googleapis.com")


def _cfg() -> DeploymentConfig:
    return build_config(None, {"project": PROJECT, "region": "europe-west4"})


def _api(**knobs: Any) -> tuple[FakeGcp, GcpApi]:
    gcp = FakeGcp(project=PROJECT, **knobs)
    return gcp, gcp.api(_cfg())


def test_error_info_reads_rest_and_grpc_errors() -> None:
    rest = service_disabled("cloudbilling.googleapis.com", "42")
    # api_core's own accessor fails on a REST error: its ErrorInfo stays a dict
    with pytest.raises(AttributeError):
        _ = rest.reason
    assert error_info(rest) == (
        "SERVICE_DISABLED",
        {"service": "cloudbilling.googleapis.com", "consumer": "projects/42"},
    )
    assert is_service_disabled(rest) and isinstance(rest, gexc.Forbidden)
    grpc = gexc.PermissionDenied(
        "Cloud Billing API has been disabled",
        details=[error_details_pb2.ErrorInfo(reason="SERVICE_DISABLED", metadata={"a": "b"})],
    )
    assert error_info(grpc) == ("SERVICE_DISABLED", {"a": "b"}) and is_service_disabled(grpc)
    plain = http_error(500, "INTERNAL", "Internal error encountered.")
    assert error_info(plain) == ("", {}) and not is_service_disabled(plain)
    assert describe(plain).startswith("500 ") and "Internal error encountered." in describe(plain)


@pytest.mark.parametrize(
    ("knobs", "call", "message", "hint"),
    [
        (
            {"project_not_found_status": 404, "project_exists": False},
            "project",
            f"project {PROJECT} does not exist or your account cannot see it",
            "gcloud projects list",
        ),
        (
            {"project_api_disabled": True},
            "project",
            "cloudresourcemanager.googleapis.com is disabled in project 764086051850",
            "gcloud services enable cloudresourcemanager.googleapis.com --project 764086051850",
        ),
        (
            {"deny_billing_read": True},
            "billing",
            f"could not read the billing status of {PROJECT}: 403 IAM_PERMISSION_DENIED",
            "billing.resourceAssociations.list",
        ),
        (
            {"test_permissions_fails": True},
            "permissions",
            f"could not test your permissions on {PROJECT}: 500",
            "",
        ),
        ({"enable_needs_billing": True}, "enable", "billing is not enabled", "linkedaccount"),
        (
            {"enable_operation_error": "Precondition check failed."},
            "enable",
            "enabling storage.googleapis.com, cloudkms.googleapis.com failed: 400 "
            "Precondition check failed.",
            "",
        ),
        (
            {"enable_never_finishes": True},
            "enable",
            "did not finish in 0s",
            "re-run; it resumes",
        ),
        ({"creds_expired": True}, "billing", "have expired or were revoked", "gcloud auth"),
    ],
)
def test_library_errors_name_their_fix(
    knobs: dict[str, Any], call: str, message: str, hint: str
) -> None:
    _, api = _api(**knobs)
    calls = {
        "project": lambda: api.check_project(PROJECT),
        "billing": lambda: api.check_billing(PROJECT),
        "permissions": lambda: api.missing_permissions(PROJECT, ("a.b.c",)),
        "enable": lambda: api.enable_services(PROJECT, STATE),
    }
    with pytest.raises(UserError) as exc:
        calls[call]()
    assert message in exc.value.message
    assert hint in (exc.value.hint or "")


def test_project_number_and_services_enabled_only_when_off() -> None:
    gcp, api = _api()
    assert api.check_project(PROJECT) == "123456789012"
    gcp.enabled_services.append("storage.googleapis.com")
    assert api.enable_services(PROJECT, STATE) == ["cloudkms.googleapis.com"]
    assert api.enable_services(PROJECT, STATE) == []  # all on: no second operation
    assert len(gcp.called("batch_enable_services")) == 1
    assert gcp.called("get_operation")  # the real Operation polled the fake operations API


def test_unreadable_policy_is_no_warning() -> None:
    gcp, api = _api(deny_get_iam_policy=True)
    assert api.project_roles_of(PROJECT, "user:admin@example.com") is None
    gcp.deny_get_iam_policy = False
    assert api.project_roles_of(PROJECT, "user:admin@example.com") == {"roles/owner"}


def test_retained_wif_pool_states() -> None:
    gcp, api = _api()
    assert api.retained_wif(PROJECT, "p", "gh", undelete=True) == {}  # 404: none
    base = f"projects/{PROJECT}/locations/global/workloadIdentityPools/p"
    gcp.wif_pools["p"] = "DELETED"
    assert api.retained_wif(PROJECT, "p", "gh", undelete=False) == {"wif_pool_deleted": base}
    assert gcp.wif_pools["p"] == "DELETED"
    assert api.retained_wif(PROJECT, "p", "gh", undelete=True) == {"wif_pool": base}
    assert gcp.wif_pools["p"] == "ACTIVE"
    # an active pool is adopted as it is: undeleting it is refused by the API
    assert api.retained_wif(PROJECT, "p", "gh", undelete=True) == {"wif_pool": base}
    assert [m for m, u, _ in gcp.requests if u.endswith(":undelete")] == ["POST"]
    assert gcp.refused == []
    gcp.wif_providers.add("p/gh")
    assert api.retained_wif(PROJECT, "p", "gh", undelete=True) == {
        "wif_pool": base,
        "wif_provider": f"{base}/providers/gh",
    }


def _zone_api(fake: FakeCloudDns) -> CloudDnsApi:
    return CloudDnsApi(fake.api(_cfg()).dns)


def test_cloud_dns_through_the_real_library() -> None:
    fake = FakeCloudDns(FakeGcp(project=PROJECT))
    fake.zones[("dns-host", "example-com")] = FakeZone(
        "example.com.", visibility="private", missing=("dns.changes.create",)
    )
    dns = _zone_api(fake)
    zone = dns.get_zone("dns-host", "example-com")
    assert zone is not None
    assert (zone.dns_name, zone.visibility) == ("example.com.", "private")
    assert zone.name_servers == ("ns-cloud-a1.example.net.", "ns-cloud-a2.example.net.")
    wanted = ("dns.managedZones.get", "dns.changes.create")
    assert dns.missing_permissions("dns-host", "example-com", wanted) == ["dns.changes.create"]
    assert dns.get_zone("dns-host", "other") is None  # 404
    with pytest.raises(UserError, match="could not test your permissions on the zone"):
        dns.missing_permissions("dns-host", "other", wanted)
    fake.gcp.creds_expired = True
    with pytest.raises(UserError, match="expired or were revoked"):
        dns.get_zone("dns-host", "example-com")


@pytest.fixture
def google_http() -> Any:
    """A loopback HTTP server answering as Google's REST endpoints would: path -> (code, body)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    routes: dict[str, tuple[int, dict[str, Any]]] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code, body = routes.get(self.path.split("?")[0], (404, {"error": {"code": 404}}))
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", routes
    server.shutdown()
    server.server_close()


def test_the_real_rest_clients_raise_what_the_fakes_raise(google_http: Any) -> None:
    """The real Resource Manager and Cloud Billing clients over HTTP: their errors carry the
    ErrorInfo the way the fakes build it, and the mapping reads it."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import billing_v1, resourcemanager_v3

    from tests.fakes.google_clients import error_body
    from zenml_gcp_gitops.gcp.api import GcpClients

    url, routes = google_http
    opts = {"api_endpoint": url}
    creds = AnonymousCredentials()
    api = GcpApi(
        _cfg(),
        credentials_fn=lambda **_: (creds, None),
        clients=GcpClients(
            projects=resourcemanager_v3.ProjectsClient(
                credentials=creds, transport="rest", client_options=opts
            ),
            billing=billing_v1.CloudBillingClient(
                credentials=creds, transport="rest", client_options=opts
            ),
        ),
    )
    routes[f"/v3/projects/{PROJECT}"] = (
        200,
        {"name": "projects/42", "projectId": PROJECT, "state": "DELETE_REQUESTED"},
    )
    with pytest.raises(UserError, match=f"project {PROJECT} is DELETE_REQUESTED"):
        api.check_project(PROJECT)
    routes[f"/v1/projects/{PROJECT}/billingInfo"] = (
        403,
        error_body(
            403,
            "PERMISSION_DENIED",
            "Cloud Billing API has not been used in project 42 before or it is disabled.",
            "SERVICE_DISABLED",
            {"service": "cloudbilling.googleapis.com", "consumer": "projects/42"},
        ),
    )
    with pytest.raises(UserError) as exc:
        api.check_billing(PROJECT)
    assert exc.value.message == "the Cloud Billing API is disabled, so billing cannot be checked"
    routes[f"/v1/projects/{PROJECT}/billingInfo"] = (200, {"billingEnabled": False})
    with pytest.raises(UserError, match="billing is not enabled"):
        api.check_billing(PROJECT)


def test_an_active_pool_refuses_undelete_and_a_deleted_one_is_soft_deleted() -> None:
    """The fake IAM API answers DELETE and :undelete as the API does, not like a GET."""
    gcp, api = _api()
    gcp.wif_pools["p"] = "ACTIVE"
    base = (
        f"https://iam.googleapis.com/v1/projects/{PROJECT}/locations/global/workloadIdentityPools/p"
    )
    with pytest.raises(gexc.BadRequest, match="is not deleted"):
        api._rest("POST", f"{base}:undelete", json={})
    api._rest("DELETE", base)
    assert gcp.wif_pools["p"] == "DELETED"
    with pytest.raises(gexc.NotFound):
        api._rest("GET", f"{base}:frobnicate")
    assert gcp.refused == ["GET " + f"{base}:frobnicate"]


def test_a_key_another_run_created_meanwhile_is_adopted() -> None:
    """KMS answers AlreadyExists when the key appeared between our get and our create."""
    gcp, api = _api()
    ring = gcp.kms.key_ring_path(PROJECT, "europe-west4", "r")
    gcp.kms.rings.add(ring)
    gcp.kms.created_elsewhere.add(f"{ring}/cryptoKeys/k")
    assert api.ensure_kms_key(PROJECT, "europe-west4", "r", "k") is False
    assert f"{ring}/cryptoKeys/k" in gcp.kms.keys


def test_an_unknown_permission_is_an_error_not_a_missing_permission() -> None:
    """testIamPermissions answers 400 for a permission that does not exist: a typo in the
    product's list must fail loudly, not be reported to the user as a role to get."""
    _, api = _api()
    with pytest.raises(UserError, match=r"stroage\.buckets\.create is not valid"):
        api.missing_permissions(PROJECT, ("storage.buckets.create", "stroage.buckets.create"))
    assert api.missing_permissions(PROJECT, ("storage.buckets.create",)) == []
