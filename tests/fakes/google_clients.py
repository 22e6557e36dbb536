"""Fakes of the Google Cloud client libraries preflight and the record store use: ADC,
Resource Manager, Cloud Billing, Service Usage, google-cloud-storage and Cloud KMS (plus the
AuthorizedSession left for Workload Identity pools, which have no Python client library).

Each fake client has the library client's method names and returns its real message types
(`resourcemanager_v3.Project`, `billing_v1.ProjectBillingInfo`, an `Operation` from
`google.api_core.operation.from_gapic`...). Errors are the exceptions the library raises,
made as it makes them: `google.api_core.exceptions.from_http_response` on Google's JSON error
body (the REST transport's path), so a reason such as SERVICE_DISABLED arrives the real way.

`FakeGcp` is one fake project; its fields are the knobs tests turn to make each check fail.
`FakeGcp.api(cfg)` returns the product's real `GcpApi` wired to these fakes.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc

# the storage fakes live in tests/fakes/fake_storage.py; re-exported for the tests that use them
from tests.fakes.fake_storage import FakeBlob as FakeBlob
from tests.fakes.fake_storage import FakeBucket as FakeBucket
from tests.fakes.fake_storage import FakeStorageClient as FakeStorageClient


def http_response(
    code: int, body: dict[str, Any], method: str = "GET", url: str = "https://fake.invalid/"
) -> requests.Response:
    """A real `requests.Response`, as an AuthorizedSession returns it."""
    resp = requests.Response()
    resp.status_code = code
    resp._content = jsonlib.dumps(body).encode()
    resp.headers["Content-Type"] = "application/json"
    resp.url = url
    resp.request = requests.Request(method, url).prepare()
    return resp


def error_body(
    code: int, status: str, message: str, reason: str = "", metadata: dict[str, str] | None = None
) -> dict[str, Any]:
    """Google's JSON error body, with an ErrorInfo detail when `reason` is given."""
    details = (
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
                "metadata": metadata or {},
            }
        ]
        if reason
        else []
    )
    return {"error": {"code": code, "status": status, "message": message, "details": details}}


def http_error(
    code: int,
    status: str,
    message: str,
    reason: str = "",
    metadata: dict[str, str] | None = None,
    method: str = "GET",
    url: str = "https://fake.invalid/",
) -> gexc.GoogleAPICallError:
    """The typed exception a REST client library raises for this error body."""
    body = error_body(code, status, message, reason, metadata)
    return gexc.from_http_response(http_response(code, body, method, url))


def service_disabled(service: str, project_number: str) -> gexc.GoogleAPICallError:
    return http_error(
        403,
        "PERMISSION_DENIED",
        f"{service} API has not been used in project {project_number} before or it is disabled.",
        "SERVICE_DISABLED",
        {"service": service, "consumer": f"projects/{project_number}"},
    )


# --------------------------------------------------------------------------- kms


class FakeKmsClient:
    def __init__(self, deny_key_use: bool = False) -> None:
        self.rings: set[str] = set()
        self.keys: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[SimpleNamespace]] = {}
        self.deny_key_use = deny_key_use
        self.calls: list[str] = []
        # keys another run creates between our get and our create (the create then conflicts)
        self.created_elsewhere: set[str] = set()

    @staticmethod
    def key_ring_path(project: str, location: str, ring: str) -> str:
        return f"projects/{project}/locations/{location}/keyRings/{ring}"

    def crypto_key_path(self, project: str, location: str, ring: str, key: str) -> str:
        return f"{self.key_ring_path(project, location, ring)}/cryptoKeys/{key}"

    def get_key_ring(self, name: str) -> dict[str, str]:
        self.calls.append("get_key_ring")
        if name not in self.rings:
            raise gexc.NotFound(name)
        return {"name": name}

    def create_key_ring(self, request: dict[str, Any]) -> None:
        self.calls.append("create_key_ring")
        name = f"{request['parent']}/keyRings/{request['key_ring_id']}"
        if name in self.rings:
            raise gexc.AlreadyExists(name)
        self.rings.add(name)

    def get_crypto_key(self, name: str) -> dict[str, Any]:
        self.calls.append("get_crypto_key")
        if self.deny_key_use:
            raise gexc.PermissionDenied("cloudkms.cryptoKeys.get denied")
        if name not in self.keys:
            raise gexc.NotFound(name)
        return self.keys[name]

    def create_crypto_key(self, request: dict[str, Any]) -> None:
        self.calls.append("create_crypto_key")
        name = f"{request['parent']}/cryptoKeys/{request['crypto_key_id']}"
        if request["parent"] not in self.rings:
            raise gexc.NotFound(request["parent"])
        if name in self.created_elsewhere:
            self.created_elsewhere.discard(name)
            self.keys[name] = dict(request["crypto_key"])
            self.versions[name] = [
                SimpleNamespace(name=f"{name}/cryptoKeyVersions/1", state="ENABLED")
            ]
        if name in self.keys:
            raise gexc.AlreadyExists(f"CryptoKey {name} already exists.")
        self.keys[name] = dict(request["crypto_key"])
        self.versions[name] = [SimpleNamespace(name=f"{name}/cryptoKeyVersions/1", state="ENABLED")]

    def list_crypto_key_versions(self, request: dict[str, Any]) -> list[SimpleNamespace]:
        if request["parent"] not in self.keys:
            raise gexc.NotFound(request["parent"])
        return self.versions[request["parent"]]

    def destroy_crypto_key_version(self, request: dict[str, Any]) -> None:
        for vs in self.versions.values():
            for v in vs:
                if v.name == request["name"]:
                    v.state = "DESTROY_SCHEDULED"


# --------------------------------------------------------------------------- client libraries

PROJECT_NUMBER = "123456789012"
IAM_URL = "https://iam.googleapis.com/"


# The services whose permissions a project's testIamPermissions knows (a permission is
# service.resource.verb); anything else is refused with 400 as the real API does.
_IAM_SERVICES = frozenset(
    "aiplatform artifactregistry billing cloudbuild cloudkms cloudsql compute container dns "
    "iam logging monitoring resourcemanager secretmanager serviceusage storage".split()
)


def _valid_permission(p: str) -> bool:
    parts = p.split(".")
    return len(parts) == 3 and parts[0] in _IAM_SERVICES and all(x.isalpha() for x in parts)


class FakeProjectsClient:
    """resourcemanager_v3.ProjectsClient: get_project, test_iam_permissions, get_iam_policy."""

    def __init__(self, gcp: FakeGcp) -> None:
        self.gcp = gcp

    def get_project(self, name: str) -> Any:
        from google.cloud import resourcemanager_v3

        g = self.gcp
        g.enter("get_project", name)
        if g.project_api_disabled:
            raise service_disabled("cloudresourcemanager.googleapis.com", "764086051850")
        if name != f"projects/{g.project}" or not g.project_exists:
            if g.project_not_found_status == 404:
                raise http_error(404, "NOT_FOUND", f"Project {name} not found.")
            raise http_error(
                403, "PERMISSION_DENIED", f"Permission denied on resource project {name}."
            )
        return resourcemanager_v3.Project(
            name=f"projects/{PROJECT_NUMBER}",
            project_id=g.project,
            state=resourcemanager_v3.Project.State[g.project_state],
        )

    def test_iam_permissions(self, request: dict[str, Any]) -> Any:
        from google.iam.v1 import iam_policy_pb2

        g = self.gcp
        g.enter("test_iam_permissions", request["resource"])
        if g.test_permissions_fails:
            raise http_error(500, "INTERNAL", "Internal error encountered.")
        for p in request["permissions"]:
            if not _valid_permission(p):
                raise http_error(
                    400, "INVALID_ARGUMENT", f"Permission {p} is not valid for this resource."
                )
        granted = [x for x in request["permissions"] if x not in g.missing]
        return iam_policy_pb2.TestIamPermissionsResponse(permissions=granted)

    def get_iam_policy(self, request: dict[str, Any]) -> Any:
        from google.iam.v1 import policy_pb2

        g = self.gcp
        g.enter("get_iam_policy", request["resource"])
        assert request["options"]["requested_policy_version"] == 3
        if g.deny_get_iam_policy:
            raise http_error(
                403, "PERMISSION_DENIED", "resourcemanager.projects.getIamPolicy denied"
            )
        compute = f"serviceAccount:{PROJECT_NUMBER}-compute@developer.gserviceaccount.com"
        bindings = [policy_pb2.Binding(role="roles/owner", members=["user:admin@example.com"])]
        role = "roles/editor" if g.compute_default_editor else "roles/logging.logWriter"
        bindings.append(policy_pb2.Binding(role=role, members=[compute]))
        return policy_pb2.Policy(
            version=1,
            etag=g.policy_etag,
            bindings=bindings,
            audit_configs=[_audit_config(s, c) for s, c in g.audit_configs.items()],
        )

    def set_iam_policy(self, request: dict[str, Any]) -> Any:
        """Only the audit configs are kept (update_mask `audit_configs`); a stale etag is
        refused as the API does."""
        from google.iam.v1 import policy_pb2

        g = self.gcp
        g.enter("set_iam_policy", request["resource"])
        policy = request["policy"]
        assert request["update_mask"]["paths"] == ["audit_configs"]
        if policy.etag != g.policy_etag:
            raise http_error(409, "ABORTED", "There were concurrent policy changes.")
        g.audit_configs = {
            ac.service: [
                {
                    "log_type": policy_pb2.AuditLogConfig.LogType.Name(c.log_type),
                    "exempted_members": list(c.exempted_members),
                }
                for c in ac.audit_log_configs
            ]
            for ac in policy.audit_configs
        }
        g.policy_etag = g.policy_etag + b"1"
        return policy


def _audit_config(service: str, configs: list[dict[str, Any]]) -> Any:
    from google.iam.v1 import policy_pb2

    return policy_pb2.AuditConfig(
        service=service,
        audit_log_configs=[
            policy_pb2.AuditLogConfig(
                log_type=policy_pb2.AuditLogConfig.LogType.Value(c["log_type"]),
                exempted_members=c.get("exempted_members", []),
            )
            for c in configs
        ],
    )


class FakeBillingClient:
    """billing_v1.CloudBillingClient.get_project_billing_info."""

    def __init__(self, gcp: FakeGcp) -> None:
        self.gcp = gcp

    def get_project_billing_info(self, name: str) -> Any:
        from google.cloud import billing_v1

        g = self.gcp
        g.enter("get_project_billing_info", name)
        if g.billing_api_disabled:
            raise service_disabled("cloudbilling.googleapis.com", PROJECT_NUMBER)
        if g.deny_billing_read:
            raise http_error(
                403,
                "PERMISSION_DENIED",
                "The caller does not have permission",
                "IAM_PERMISSION_DENIED",
                {"permission": "billing.resourceAssociations.list"},
            )
        return billing_v1.ProjectBillingInfo(
            name=f"{name}/billingInfo",
            project_id=g.project,
            billing_enabled=g.billing_enabled,
            billing_account_name="billingAccounts/X" if g.billing_enabled else "",
        )


class FakeOperationsClient:
    """The long-running operations client `operation.from_gapic` polls through."""

    def __init__(self, gcp: FakeGcp) -> None:
        self.gcp = gcp
        self.finished: dict[str, Any] = {}

    def get_operation(self, name: str, **_: Any) -> Any:
        self.gcp.enter("get_operation", name)
        if self.gcp.enable_never_finishes:
            from google.longrunning import operations_pb2

            return operations_pb2.Operation(name=name, done=False)
        return self.finished[name]

    def cancel_operation(self, name: str, **_: Any) -> None:
        self.gcp.enter("cancel_operation", name)


class FakeServiceUsageClient:
    """service_usage_v1.ServiceUsageClient: batch_get_services, batch_enable_services."""

    def __init__(self, gcp: FakeGcp) -> None:
        self.gcp = gcp
        self.operations = FakeOperationsClient(gcp)

    def batch_get_services(self, request: dict[str, Any]) -> Any:
        from google.cloud import service_usage_v1

        g = self.gcp
        g.enter("batch_get_services", request["parent"])
        services = []
        for name in request["names"]:
            on = name.rsplit("/", 1)[-1] in g.enabled_services
            services.append(
                service_usage_v1.Service(
                    name=name.replace(f"projects/{g.project}", f"projects/{PROJECT_NUMBER}"),
                    state=service_usage_v1.State.ENABLED if on else service_usage_v1.State.DISABLED,
                )
            )
        return service_usage_v1.BatchGetServicesResponse(services=services)

    def batch_enable_services(self, request: dict[str, Any]) -> Any:
        from google.api_core import operation
        from google.cloud import service_usage_v1
        from google.longrunning import operations_pb2
        from google.protobuf import any_pb2
        from google.rpc import status_pb2

        g = self.gcp
        g.enter("batch_enable_services", request["parent"])
        if g.enable_fails:
            raise http_error(
                403,
                "PERMISSION_DENIED",
                "Permission denied to enable service",
                "AUTH_PERMISSION_DENIED",
                method="POST",
            )
        if g.enable_needs_billing:
            raise http_error(
                400,
                "FAILED_PRECONDITION",
                "Billing account for project is not found.",
                "BILLING_DISABLED",
                method="POST",
            )
        name = f"operations/acf.p2-{len(self.operations.finished) + 1}"
        done = operations_pb2.Operation(name=name, done=True)
        if g.enable_operation_error:
            done.error.CopyFrom(status_pb2.Status(code=9, message=g.enable_operation_error))
        else:
            g.enabled_services.extend(request["service_ids"])
            packed = any_pb2.Any()
            packed.Pack(service_usage_v1.BatchEnableServicesResponse.pb()())
            done.response.CopyFrom(packed)
        self.operations.finished[name] = done
        return operation.from_gapic(
            operations_pb2.Operation(name=name, done=False),
            self.operations,
            service_usage_v1.BatchEnableServicesResponse,
            metadata_type=service_usage_v1.OperationMetadata,
        )


# --------------------------------------------------------------------------- the project


def _no_cloud_dns(project: str) -> Any:
    raise AssertionError("this test has no fake Cloud DNS (tests/fakes/cloud_dns.py)")


@dataclass
class FakeGcp:
    """One fake project and account. Flip a knob to make a preflight check fail."""

    project: str = "my-project-1"
    adc: bool = True
    creds_expired: bool = False
    project_exists: bool = True
    project_not_found_status: int = 403  # what Resource Manager answers (403 hides existence)
    project_state: str = "ACTIVE"
    project_api_disabled: bool = False  # Resource Manager off in the ADC quota project
    billing_enabled: bool = True
    billing_api_disabled: bool = False
    deny_billing_read: bool = False
    missing: tuple[str, ...] = ()
    test_permissions_fails: bool = False
    enable_fails: bool = False
    enable_needs_billing: bool = False
    enable_operation_error: str | None = None
    enable_never_finishes: bool = False
    foreign_buckets: set[str] = field(default_factory=set)
    deny_key_use: bool = False
    compute_default_editor: bool = False  # projects made before May 2024 (no org policy)
    deny_get_iam_policy: bool = False
    # the project's audit configs: service -> [{"log_type", "exempted_members"}]
    audit_configs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    policy_etag: bytes = b"BwX="
    # the client-library calls made: (method, resource)
    calls: list[tuple[str, str]] = field(default_factory=list)
    # the AuthorizedSession calls made (Workload Identity pools): (method, url, body)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    enabled_services: list[str] = field(default_factory=list)
    # Workload Identity pools: ID -> state (ACTIVE | DELETED); their providers: "pool/provider"
    wif_pools: dict[str, str] = field(default_factory=dict)
    wif_providers: set[str] = field(default_factory=set)
    # requests the IAM API would refuse for their shape (no such method, a bad body)
    refused: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.storage = FakeStorageClient(self.foreign_buckets)
        self.kms = FakeKmsClient(self.deny_key_use)
        self.projects = FakeProjectsClient(self)
        self.billing = FakeBillingClient(self)
        self.service_usage = FakeServiceUsageClient(self)

    def enter(self, method: str, resource: str) -> None:
        """Every fake call: logged, and refused as the real transport refuses an expired login."""
        self.calls.append((method, resource))
        if self.creds_expired:
            raise auth_exc.RefreshError("invalid_grant: Token has been expired or revoked.")

    def called(self, method: str) -> list[str]:
        return [r for m, r in self.calls if m == method]

    def default(self, scopes: list[str] | None = None, **_: Any) -> tuple[Any, str | None]:
        if not self.adc:
            raise auth_exc.DefaultCredentialsError("Could not automatically determine credentials.")
        return SimpleNamespace(token="fake-token", valid=True), self.project

    # the AuthorizedSession face: Workload Identity pools only
    def request(
        self, method: str, url: str, json: Any = None, timeout: float | None = None, **_: Any
    ) -> requests.Response:
        self.requests.append((method, url, json))
        if self.creds_expired:
            raise auth_exc.RefreshError("invalid_grant: Token has been expired or revoked.")

        def reply(code: int, body: dict[str, Any]) -> requests.Response:
            return http_response(code, body, method, url)

        def not_found(what: str) -> requests.Response:
            return reply(404, error_body(404, "NOT_FOUND", f"{what} not found"))

        from urllib.parse import urlsplit

        from tests.fakes.discovery import check_body, find_method

        # only methods the IAM API documents, with bodies it accepts
        path = urlsplit(url).path
        mid = find_method("iam", "v1", method, path) if url.startswith(IAM_URL) else None
        if mid is None:
            self.refused.append(f"{method} {url}")
            return not_found(f"no such method: {method} {url}:")
        problems = check_body("iam", "v1", mid, json)
        if problems:
            self.refused += problems
            return reply(400, error_body(400, "INVALID_ARGUMENT", "; ".join(problems)))
        wif = f"/v1/projects/{self.project}/locations/global/workloadIdentityPools/"
        if wif not in path:
            return not_found(f"the fake has no project {path}:")
        rest = path.split(wif, 1)[1]
        pool, _, tail = rest.partition("/providers/")
        pool_id = pool.split(":")[0]
        if pool_id not in self.wif_pools:
            return not_found(f"pool {pool_id}")
        verb = mid.removeprefix("iam.projects.locations.workloadIdentityPools.")
        if verb == "undelete":
            if self.wif_pools[pool_id] != "DELETED":
                return reply(
                    400,
                    error_body(400, "FAILED_PRECONDITION", f"Pool {pool_id} is not deleted."),
                )
            self.wif_pools[pool_id] = "ACTIVE"
            return reply(200, {"name": f"{wif.strip('/')}/{pool_id}/operations/op-1", "done": True})
        if verb == "delete":
            if self.wif_pools[pool_id] == "DELETED":
                return not_found(f"pool {pool_id}")
            self.wif_pools[pool_id] = "DELETED"
            return reply(200, {"name": f"{wif.strip('/')}/{pool_id}/operations/op-2", "done": True})
        if verb == "providers.get":
            if f"{pool_id}/{tail}" not in self.wif_providers:
                return not_found(f"provider {tail}")
            return reply(200, {"name": rest, "state": "ACTIVE"})
        if verb == "get":
            return reply(200, {"name": rest, "state": self.wif_pools[pool_id]})
        return reply(501, error_body(501, "UNIMPLEMENTED", f"the fake does not serve {mid}"))

    def api(self, cfg: Any, dns: Callable[[str], Any] | None = None) -> Any:
        from zenml_gcp_gitops.gcp.api import GcpApi, GcpClients

        return GcpApi(
            cfg,
            credentials_fn=self.default,
            clients=GcpClients(
                projects=self.projects,
                billing=self.billing,
                service_usage=self.service_usage,
                storage=self.storage,
                kms=self.kms,
                dns=dns or _no_cloud_dns,
                session=self,
            ),
            operation_timeout=0.5,
        )
