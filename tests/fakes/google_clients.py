"""Fakes of the Google clients preflight and the record store use: ADC, an AuthorizedSession
(REST: Resource Manager, Cloud Billing, Service Usage), google-cloud-storage, Cloud KMS.

`FakeGcp` is one fake project; its fields are the knobs tests turn to make each check fail.
`FakeGcp.api(cfg)` returns the product's real `GcpApi` wired to these fakes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc


class FakeResponse:
    def __init__(self, status_code: int, data: dict[str, Any]) -> None:
        self.status_code = status_code
        self._data = data

    def json(self) -> dict[str, Any]:
        return self._data


def _err(code: int, status: str, message: str, reason: str = "") -> FakeResponse:
    details = (
        [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}] if reason else []
    )
    return FakeResponse(
        code, {"error": {"code": code, "status": status, "message": message, "details": details}}
    )


# --------------------------------------------------------------------------- storage


class FakeBlob:
    """An object with GCS's generation numbers and `if_generation_match` preconditions
    (0 means "must not exist")."""

    def __init__(self, bucket: FakeBucket, name: str) -> None:
        self.bucket = bucket
        self.name = name
        self.generation: int | None = None

    @property
    def _key(self) -> tuple[str, str]:
        return (self.bucket.name, self.name)

    def _check(self) -> None:
        if self.bucket.name not in self.bucket.client.buckets:
            raise gexc.NotFound(f"bucket {self.bucket.name} not found")

    def _precondition(self, if_generation_match: int | None) -> None:
        if if_generation_match is None:
            return
        current = self.bucket.client.generations.get(self._key, 0)
        if self._key not in self.bucket.client.objects:
            current = 0
        if current != if_generation_match:
            raise gexc.PreconditionFailed(f"{self.name}: generation {current}")

    def upload_from_string(
        self,
        data: str | bytes,
        content_type: str | None = None,
        if_generation_match: int | None = None,
    ) -> None:
        self._check()
        client = self.bucket.client
        with client.lock:
            self._precondition(if_generation_match)
            client.objects[self._key] = data if isinstance(data, str) else data.decode()
            client.counter += 1
            client.generations[self._key] = client.counter
            self.generation = client.counter

    def download_as_text(self, if_generation_match: int | None = None) -> str:
        self._check()
        with self.bucket.client.lock:
            self._precondition(if_generation_match)
            try:
                text = self.bucket.client.objects[self._key]
            except KeyError:
                raise gexc.NotFound(f"{self.name} not found") from None
            self.generation = self.bucket.client.generations.get(self._key)
            return text

    def delete(self, if_generation_match: int | None = None) -> None:
        self._check()
        with self.bucket.client.lock:
            self._precondition(if_generation_match)
            if self.bucket.client.objects.pop(self._key, None) is None:
                raise gexc.NotFound(self.name)


class FakeBucket:
    def __init__(self, client: FakeStorageClient, name: str) -> None:
        self.client = client
        self.name = name
        self.versioning_enabled = False
        self.iam_configuration = SimpleNamespace(
            uniform_bucket_level_access_enabled=False, public_access_prevention="inherited"
        )
        self.labels: dict[str, str] = {}
        self.location: str | None = None

    def blob(self, name: str) -> FakeBlob:
        return FakeBlob(self, name)

    def get_blob(self, name: str) -> FakeBlob | None:
        if self.name not in self.client.buckets:
            raise gexc.NotFound(f"bucket {self.name} not found")
        if (self.name, name) not in self.client.objects:
            return None
        blob = FakeBlob(self, name)
        blob.generation = self.client.generations.get((self.name, name))
        return blob

    def delete(self) -> None:
        self.client.buckets.pop(self.name, None)


class FakeStorageClient:
    def __init__(self, foreign_buckets: set[str] | None = None) -> None:
        self.buckets: dict[str, FakeBucket] = {}
        self.objects: dict[tuple[str, str], str] = {}
        self.generations: dict[tuple[str, str], int] = {}
        self.counter = 0
        self.lock = threading.Lock()
        self.foreign = set(foreign_buckets or ())  # exist, but belong to another project

    def bucket(self, name: str) -> FakeBucket:
        return self.buckets.get(name) or FakeBucket(self, name)

    def lookup_bucket(self, name: str) -> FakeBucket | None:
        if name in self.foreign:
            raise gexc.Forbidden(f"caller does not have storage.buckets.get access to {name}")
        return self.buckets.get(name)

    def get_bucket(self, name: str) -> FakeBucket:
        if name not in self.buckets:
            raise gexc.NotFound(name)
        return self.buckets[name]

    def create_bucket(self, bucket: FakeBucket, location: str | None = None) -> FakeBucket:
        if bucket.name in self.buckets or bucket.name in self.foreign:
            raise gexc.Conflict(f"bucket {bucket.name} already exists")
        bucket.location = location
        self.buckets[bucket.name] = bucket
        return bucket

    def list_blobs(self, bucket: str, prefix: str = "", versions: bool = False) -> list[FakeBlob]:
        b = self.bucket(bucket)
        return [
            FakeBlob(b, name)
            for (bn, name) in list(self.objects)
            if bn == bucket and name.startswith(prefix)
        ]


# --------------------------------------------------------------------------- kms


class FakeKmsClient:
    def __init__(self, deny_key_use: bool = False) -> None:
        self.rings: set[str] = set()
        self.keys: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[SimpleNamespace]] = {}
        self.deny_key_use = deny_key_use
        self.calls: list[str] = []

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


# --------------------------------------------------------------------------- REST + ADC


@dataclass
class FakeGcp:
    """One fake project and account. Flip a knob to make a preflight check fail."""

    project: str = "my-project-1"
    adc: bool = True
    creds_expired: bool = False
    project_exists: bool = True
    project_state: str = "ACTIVE"
    billing_enabled: bool = True
    billing_api_disabled: bool = False
    missing: tuple[str, ...] = ()
    enable_fails: bool = False
    foreign_buckets: set[str] = field(default_factory=set)
    deny_key_use: bool = False
    compute_default_editor: bool = False  # projects made before May 2024 (no org policy)
    deny_get_iam_policy: bool = False
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    enabled_services: list[str] = field(default_factory=list)
    # Workload Identity pools: ID -> state (ACTIVE | DELETED); their providers: "pool/provider"
    wif_pools: dict[str, str] = field(default_factory=dict)
    wif_providers: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.storage = FakeStorageClient(self.foreign_buckets)
        self.kms = FakeKmsClient(self.deny_key_use)

    def default(self, scopes: list[str] | None = None, **_: Any) -> tuple[Any, str | None]:
        if not self.adc:
            raise auth_exc.DefaultCredentialsError("Could not automatically determine credentials.")
        return SimpleNamespace(token="fake-token", valid=True), self.project

    # the AuthorizedSession face
    def request(
        self, method: str, url: str, json: Any = None, timeout: float | None = None, **_: Any
    ) -> FakeResponse:
        self.requests.append((method, url, json))
        if self.creds_expired:
            raise auth_exc.RefreshError("invalid_grant: Token has been expired or revoked.")
        p = self.project
        if url.endswith(f"/v3/projects/{p}") and method == "GET":
            if not self.project_exists:
                return _err(403, "PERMISSION_DENIED", f"Permission denied on resource project {p}.")
            return FakeResponse(
                200, {"name": "projects/123456789012", "projectId": p, "state": self.project_state}
            )
        if "/v3/projects/" in url and method == "GET":
            return _err(403, "PERMISSION_DENIED", "Permission denied")
        if url.endswith(f"/projects/{p}/billingInfo"):
            if self.billing_api_disabled:
                return _err(
                    403,
                    "PERMISSION_DENIED",
                    "Cloud Billing API has not been used in project",
                    "SERVICE_DISABLED",
                )
            return FakeResponse(
                200,
                {
                    "billingEnabled": self.billing_enabled,
                    "billingAccountName": "billingAccounts/X" if self.billing_enabled else "",
                },
            )
        if url.endswith(f"/projects/{p}:testIamPermissions"):
            granted = [x for x in (json or {}).get("permissions", []) if x not in self.missing]
            return FakeResponse(200, {"permissions": granted})
        if url.endswith(f"/projects/{p}:getIamPolicy") and method == "POST":
            if self.deny_get_iam_policy:
                return _err(403, "PERMISSION_DENIED", "resourcemanager.projects.getIamPolicy")
            compute = "serviceAccount:123456789012-compute@developer.gserviceaccount.com"
            bindings = [{"role": "roles/owner", "members": ["user:admin@example.com"]}]
            if self.compute_default_editor:
                bindings.append({"role": "roles/editor", "members": [compute]})
            else:
                bindings.append({"role": "roles/logging.logWriter", "members": [compute]})
            return FakeResponse(200, {"version": 1, "etag": "BwX=", "bindings": bindings})
        if url.endswith(f"/projects/{p}/services:batchEnable"):
            if self.enable_fails:
                return _err(
                    403,
                    "PERMISSION_DENIED",
                    "Permission denied to enable service",
                    "AUTH_PERMISSION_DENIED",
                )
            self.enabled_services.extend((json or {}).get("serviceIds", []))
            return FakeResponse(200, {"name": "operations/op-1", "done": False})
        wif = f"/v1/projects/{p}/locations/global/workloadIdentityPools/"
        if wif in url:
            rest = url.split(wif, 1)[1]
            pool, _, tail = rest.partition("/providers/")
            pool_id = pool.removesuffix(":undelete")
            if pool_id not in self.wif_pools:
                return _err(404, "NOT_FOUND", f"pool {pool_id} not found")
            if method == "POST" and pool.endswith(":undelete"):
                self.wif_pools[pool_id] = "ACTIVE"
                return FakeResponse(200, {"name": "operations/op-1", "done": True})
            if tail:
                if f"{pool_id}/{tail}" not in self.wif_providers:
                    return _err(404, "NOT_FOUND", f"provider {tail} not found")
                return FakeResponse(200, {"name": rest, "state": self.wif_pools[pool_id]})
            return FakeResponse(200, {"name": rest, "state": self.wif_pools[pool_id]})
        if url.endswith("/operations/op-1"):
            return FakeResponse(200, {"name": "operations/op-1", "done": True, "response": {}})
        return _err(404, "NOT_FOUND", f"fake has no route for {method} {url}")

    def api(self, cfg: Any) -> Any:
        from zenml_gcp_gitops.phases.preflight import GcpApi

        return GcpApi(
            cfg,
            credentials_fn=self.default,
            session=self,
            storage_client=self.storage,
            kms_client=self.kms,
            poll_interval=0,
        )
