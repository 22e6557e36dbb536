"""The Google calls of preflight (and of `destroy --purge-state`), one method per question.

Each goes through a Google Cloud client library (Resource Manager, Cloud Billing, Service
Usage, Cloud Storage, Cloud KMS; Cloud DNS in `dns.py`) and maps its typed errors
(`google.api_core.exceptions`) to a `UserError` that names the fix. The clients are made
lazily from Application Default Credentials, or injected (`GcpClients`): tests hand in fakes
of the libraries' clients, so the mapping below is what they exercise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import MissingCredentials, UserError
from .errors import (
    describe,
    error_info,
    expired_login_is_one_line,
    is_service_disabled,
    service_disabled_error,
)

if TYPE_CHECKING:
    from google.api_core.exceptions import GoogleAPICallError

    from ..config import DeploymentConfig

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
IAM = "https://iam.googleapis.com/v1"


@dataclass
class GcpClients:
    """Clients injected instead of the real ones (None: made from ADC when first needed)."""

    projects: Any = None  # resourcemanager_v3.ProjectsClient
    billing: Any = None  # billing_v1.CloudBillingClient
    service_usage: Any = None  # service_usage_v1.ServiceUsageClient
    storage: Any = None  # google.cloud.storage.Client
    kms: Any = None  # kms.KeyManagementServiceClient
    dns: Callable[[str], Any] | None = None  # project -> google.cloud.dns.Client
    session: Any = None  # an AuthorizedSession, for Workload Identity pools only


class GcpApi:
    """The few Google calls preflight makes, through injectable clients."""

    def __init__(
        self,
        cfg: DeploymentConfig,
        *,
        credentials_fn: Callable[..., tuple[Any, str | None]] | None = None,
        clients: GcpClients | None = None,
        operation_timeout: float = 180.0,
    ) -> None:
        self.cfg = cfg
        self._credentials_fn = credentials_fn
        self._creds: Any = None
        self._clients = clients or GcpClients()
        self.operation_timeout = operation_timeout

    # -- clients (created lazily: most checks fail fast before we need them)
    def credentials(self) -> Any:
        if self._creds is not None:
            return self._creds
        import google.auth
        from google.auth import exceptions as gexc

        fn = self._credentials_fn or google.auth.default
        # google.auth logs each method it tried; the one line below says it all
        quiet = logging.getLogger("google.auth._default")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            self._creds, _ = fn(scopes=SCOPES)
        except gexc.DefaultCredentialsError:
            raise MissingCredentials() from None
        finally:
            quiet.setLevel(level)
        return self._creds

    # The REST transport: an expired login raises RefreshError at once, where gRPC's
    # metadata plugin turns it into UNAVAILABLE, which the default retry repeats for minutes.
    def projects(self) -> Any:
        if self._clients.projects is None:
            from google.cloud import resourcemanager_v3

            self._clients.projects = resourcemanager_v3.ProjectsClient(
                credentials=self.credentials(), transport="rest"
            )
        return self._clients.projects

    def billing(self) -> Any:
        if self._clients.billing is None:
            from google.cloud import billing_v1

            self._clients.billing = billing_v1.CloudBillingClient(
                credentials=self.credentials(), transport="rest"
            )
        return self._clients.billing

    def service_usage(self) -> Any:
        if self._clients.service_usage is None:
            from google.cloud import service_usage_v1

            self._clients.service_usage = service_usage_v1.ServiceUsageClient(
                credentials=self.credentials(), transport="rest"
            )
        return self._clients.service_usage

    def storage(self) -> Any:
        if self._clients.storage is None:
            import google.cloud.storage as storage

            self._clients.storage = storage.Client(
                project=self.cfg.project, credentials=self.credentials()
            )
        return self._clients.storage

    def kms(self) -> Any:
        if self._clients.kms is None:
            import google.cloud.kms as kms

            self._clients.kms = kms.KeyManagementServiceClient(credentials=self.credentials())
        return self._clients.kms

    def dns(self, project: str) -> Any:
        """A Cloud DNS client for `project` (the zone may live in another project)."""
        if self._clients.dns is not None:
            return self._clients.dns(project)
        import google.cloud.dns as dns

        return dns.Client(project=project, credentials=self.credentials())

    def session(self) -> Any:
        if self._clients.session is None:
            from google.auth.transport.requests import AuthorizedSession

            self._clients.session = AuthorizedSession(self.credentials())  # type: ignore[no-untyped-call]
        return self._clients.session

    def _rest(self, method: str, url: str, json: Any = None) -> dict[str, Any]:
        """No Python client library covers Workload Identity pools (google-cloud-iam has
        service accounts, roles and policies), so those calls keep an AuthorizedSession;
        their errors become the typed exceptions the client libraries raise."""
        from google.api_core import exceptions as gexc

        with expired_login_is_one_line():
            resp = self.session().request(method, url, json=json, timeout=30)
        if resp.status_code >= 400:
            raise gexc.from_http_response(resp)  # type: ignore[no-untyped-call]
        data: dict[str, Any] = resp.json()
        return data

    # -- checks
    def check_project(self, project: str) -> str | None:
        """The project's number, after checking it is there, visible and ACTIVE."""
        from google.api_core import exceptions as gexc

        try:
            with expired_login_is_one_line():
                found = self.projects().get_project(name=f"projects/{project}")
        except gexc.Forbidden as e:
            if is_service_disabled(e):
                raise service_disabled_error(e, f"reading project {project}") from None
            raise self._no_such_project(project) from None
        except gexc.NotFound:
            raise self._no_such_project(project) from None
        except gexc.GoogleAPICallError as e:
            raise UserError(f"could not read project {project}: {describe(e)}") from None
        state = found.state.name
        if state not in ("ACTIVE", "STATE_UNSPECIFIED"):
            raise UserError(
                f"project {project} is {state}",
                "restore it (`gcloud projects undelete`) or choose another project",
            )
        return str(found.name).removeprefix("projects/") or None

    @staticmethod
    def _no_such_project(project: str) -> UserError:
        return UserError(
            f"project {project} does not exist or your account cannot see it",
            "check the project ID (`gcloud projects list`) and that you have a role on it",
        )

    def check_billing(self, project: str) -> None:
        from google.api_core import exceptions as gexc

        try:
            with expired_login_is_one_line():
                info = self.billing().get_project_billing_info(name=f"projects/{project}")
        except gexc.Forbidden as e:
            if is_service_disabled(e):
                raise UserError(
                    "the Cloud Billing API is disabled, so billing cannot be checked",
                    f"run `gcloud services enable cloudbilling.googleapis.com --project {project}`",
                ) from None
            raise self._billing_unreadable(project, e) from None
        except gexc.GoogleAPICallError as e:
            raise self._billing_unreadable(project, e) from None
        if not info.billing_enabled:
            raise self._billing_disabled(project)

    @staticmethod
    def _billing_unreadable(project: str, e: GoogleAPICallError) -> UserError:
        return UserError(
            f"could not read the billing status of {project}: {describe(e)}",
            "you need billing.resourceAssociations.list (e.g. roles/viewer) on the project",
        )

    @staticmethod
    def _billing_disabled(project: str) -> UserError:
        return UserError(
            f"billing is not enabled on project {project}",
            f"link a billing account: https://console.cloud.google.com/billing/linkedaccount?project={project}",
        )

    def missing_permissions(self, project: str, permissions: tuple[str, ...]) -> list[str]:
        from google.api_core import exceptions as gexc

        try:
            with expired_login_is_one_line():
                resp = self.projects().test_iam_permissions(
                    request={"resource": f"projects/{project}", "permissions": list(permissions)}
                )
        except gexc.GoogleAPICallError as e:
            raise UserError(
                f"could not test your permissions on {project}: {describe(e)}"
            ) from None
        granted = set(resp.permissions)
        return [p for p in permissions if p not in granted]

    def project_roles_of(self, project: str, member: str) -> set[str] | None:
        """The project-level roles `member` holds, or None when the policy cannot be read."""
        from google.api_core import exceptions as gexc

        try:
            with expired_login_is_one_line():
                policy = self.projects().get_iam_policy(
                    request={
                        "resource": f"projects/{project}",
                        "options": {"requested_policy_version": 3},
                    }
                )
        except gexc.GoogleAPICallError:
            return None
        return {str(b.role) for b in policy.bindings if member in b.members}

    def _policy(self, project: str) -> Any:
        from google.api_core import exceptions as gexc

        try:
            with expired_login_is_one_line():
                return self.projects().get_iam_policy(
                    request={
                        "resource": f"projects/{project}",
                        "options": {"requested_policy_version": 3},
                    }
                )
        except gexc.GoogleAPICallError as e:
            raise UserError(
                f"could not read the IAM policy of {project} (its audit configs): {describe(e)}",
                "you need resourcemanager.projects.getIamPolicy; or set data_access_logs: false "
                "where audit configs are managed elsewhere",
            ) from None

    def audit_configs(self, project: str, services: tuple[str, ...]) -> dict[str, Any]:
        """The project's audit log configs of `services`: {service: [{log_type,
        exempted_members}]}, only the services that have one."""
        from google.iam.v1 import policy_pb2

        out: dict[str, Any] = {}
        for ac in self._policy(project).audit_configs:
            if ac.service in services:
                out[ac.service] = [
                    {
                        "log_type": policy_pb2.AuditLogConfig.LogType.Name(c.log_type),
                        "exempted_members": sorted(c.exempted_members),
                    }
                    for c in ac.audit_log_configs
                ]
        return out

    def restore_audit_config(self, project: str, service: str, configs: list[Any]) -> bool:
        """Put `configs` back as `service`'s audit config if it has none now (read, modify,
        write with the policy's etag); False when one is there (left untouched)."""
        from google.api_core import exceptions as gexc
        from google.iam.v1 import policy_pb2

        policy = self._policy(project)
        if any(ac.service == service for ac in policy.audit_configs):
            return False
        policy.audit_configs.append(
            policy_pb2.AuditConfig(
                service=service,
                audit_log_configs=[
                    policy_pb2.AuditLogConfig(
                        log_type=policy_pb2.AuditLogConfig.LogType.Value(c["log_type"]),
                        exempted_members=list(c["exempted_members"]),
                    )
                    for c in configs
                ],
            )
        )
        try:
            with expired_login_is_one_line():
                self.projects().set_iam_policy(
                    request={
                        "resource": f"projects/{project}",
                        "policy": policy,
                        "update_mask": {"paths": ["audit_configs"]},
                    }
                )
        except gexc.GoogleAPICallError as e:
            raise UserError(
                f"could not restore the audit config of {service} on {project}: {describe(e)}",
                "re-run `destroy` (it resumes), or set it by hand with "
                f"`gcloud projects set-iam-policy {project}`",
            ) from None
        return True

    def disabled_services(self, project: str, services: tuple[str, ...]) -> list[str]:
        """Those of `services` that are not enabled (all of them when that cannot be read)."""
        from google.api_core import exceptions as gexc

        names = [f"projects/{project}/services/{s}" for s in services]
        try:
            with expired_login_is_one_line():
                found = self.service_usage().batch_get_services(
                    request={"parent": f"projects/{project}", "names": names}
                )
        except gexc.GoogleAPICallError:
            return list(services)  # cannot tell: enabling what is on is a no-op
        return [s.name.rsplit("/", 1)[-1] for s in found.services if s.state.name != "ENABLED"]

    def enable_services(self, project: str, services: tuple[str, ...]) -> list[str]:
        """Enable those of `services` that are off; the ones it enabled."""
        from concurrent.futures import TimeoutError as OperationTimeout

        from google.api_core import exceptions as gexc

        client = self.service_usage()
        off = self.disabled_services(project, services)
        if not off:
            return []
        what = ", ".join(off)
        try:
            with expired_login_is_one_line():
                op = client.batch_enable_services(
                    request={"parent": f"projects/{project}", "service_ids": off}
                )
        except gexc.GoogleAPICallError as e:
            if error_info(e)[0] == "BILLING_DISABLED":
                raise self._billing_disabled(project) from None
            raise UserError(
                f"could not enable {what}: {describe(e)}",
                "you need serviceusage.services.enable (roles/serviceusage.serviceUsageAdmin)",
            ) from None
        try:
            with expired_login_is_one_line():
                op.result(timeout=self.operation_timeout)
        except OperationTimeout:
            raise UserError(
                f"enabling {what} did not finish in {self.operation_timeout:.0f}s",
                "re-run; it resumes",
            ) from None
        except gexc.GoogleAPICallError as e:
            raise UserError(f"enabling {what} failed: {describe(e)}") from None
        return off

    # -- state bucket
    def bucket_exists(self, name: str) -> bool:
        from google.api_core import exceptions as gexc

        try:
            return self.storage().lookup_bucket(name) is not None
        except gexc.Forbidden:
            raise UserError(
                f"the bucket gs://{name} exists but belongs to someone else (bucket names are global)",
                "choose another --name, or pass --state gs://<a bucket you own>",
            ) from None

    def create_state_bucket(self, name: str, region: str, labels: dict[str, str]) -> None:
        from google.api_core import exceptions as gexc

        client = self.storage()
        bucket = client.bucket(name)
        bucket.versioning_enabled = True  # every state write is a new object version
        bucket.iam_configuration.uniform_bucket_level_access_enabled = True
        bucket.iam_configuration.public_access_prevention = "enforced"
        bucket.labels = labels
        try:
            client.create_bucket(bucket, location=region)
        except gexc.Conflict:
            if not self.bucket_exists(name):
                raise UserError(
                    f"the bucket name {name} is taken", "choose another --name or --state"
                ) from None

    # -- state key
    def kms_key_exists(self, project: str, region: str, ring: str, key: str) -> bool:
        from google.api_core import exceptions as gexc

        try:
            self.kms().get_crypto_key(name=self.kms().crypto_key_path(project, region, ring, key))
            return True
        except gexc.NotFound:
            return False

    def retained_kms(self, project: str, region: str, ring: str, key: str) -> dict[str, str]:
        """The stack's key ring and key when GCP still has them (it never deletes either)."""
        from google.api_core import exceptions as gexc

        client = self.kms()
        found: dict[str, str] = {}
        ring_path = client.key_ring_path(project, region, ring)
        try:
            client.get_key_ring(name=ring_path)
        except gexc.NotFound:
            return found
        found["kms_key_ring"] = ring_path
        key_path = client.crypto_key_path(project, region, ring, key)
        try:
            client.get_crypto_key(name=key_path)
            found["kms_key"] = key_path
        except gexc.NotFound:
            pass
        return found

    def retained_wif(
        self, project: str, pool: str, provider: str, *, undelete: bool
    ) -> dict[str, str]:
        """The CI pool and provider when GCP has them. A pool deleted by an earlier `destroy`
        stays soft-deleted for 30 days and blocks its ID: it is undeleted (with `undelete`)
        so the deploy can adopt it."""
        from google.api_core import exceptions as gexc

        base = f"projects/{project}/locations/global/workloadIdentityPools/{pool}"
        try:
            found_pool = self._rest("GET", f"{IAM}/{base}")
        except (gexc.Forbidden, gexc.NotFound):  # none, or the IAM API is not on yet
            return {}
        except gexc.GoogleAPICallError as e:
            raise UserError(f"could not read the pool {pool}: {describe(e)}") from None
        if found_pool.get("state") == "DELETED":
            if not undelete:
                return {"wif_pool_deleted": base}
            try:
                self._rest("POST", f"{IAM}/{base}:undelete", json={})
            except gexc.GoogleAPICallError as e:
                raise UserError(
                    f"the pool {pool} is soft-deleted and could not be undeleted: {describe(e)}",
                    f"undelete it (`gcloud iam workload-identity-pools undelete {pool} "
                    "--location=global`) or choose another --name",
                ) from None
        found = {"wif_pool": base}
        try:
            prov = self._rest("GET", f"{IAM}/{base}/providers/{provider}")
        except gexc.GoogleAPICallError:
            return found
        if prov.get("state") != "DELETED":
            found["wif_provider"] = f"{base}/providers/{provider}"
        return found

    def ensure_kms_key(self, project: str, region: str, ring: str, key: str) -> bool:
        """Create the key ring and key if absent; True when something was created."""
        from google.api_core import exceptions as gexc

        client = self.kms()
        created = False
        ring_path = client.key_ring_path(project, region, ring)
        try:
            client.get_key_ring(name=ring_path)
        except gexc.NotFound:
            try:
                client.create_key_ring(
                    request={
                        "parent": f"projects/{project}/locations/{region}",
                        "key_ring_id": ring,
                        "key_ring": {},
                    }
                )
                created = True
            except gexc.AlreadyExists:
                pass
        try:
            client.get_crypto_key(name=client.crypto_key_path(project, region, ring, key))
        except gexc.NotFound:
            try:
                client.create_crypto_key(
                    request={
                        "parent": ring_path,
                        "crypto_key_id": key,
                        "crypto_key": {
                            "purpose": "ENCRYPT_DECRYPT",
                            "labels": self.cfg.names.labels,
                        },
                    }
                )
                created = True
            except gexc.AlreadyExists:
                pass
        except gexc.PermissionDenied:
            raise UserError(
                f"you cannot use the KMS key {ring}/{key}",
                "grant yourself roles/cloudkms.cryptoKeyEncrypterDecrypter, or use --secrets-provider passphrase",
            ) from None
        return created

    # -- purge (destroy --purge-state)
    def delete_bucket(self, name: str) -> None:
        from google.api_core import exceptions as gexc

        try:
            bucket = self.storage().get_bucket(name)
        except gexc.NotFound:
            return
        for blob in self.storage().list_blobs(name, versions=True):
            blob.delete()
        bucket.delete()

    def destroy_key_versions(self, project: str, region: str, ring: str, key: str) -> int:
        """KMS keys cannot be deleted; destroying their versions makes them unusable and free."""
        from google.api_core import exceptions as gexc

        client = self.kms()
        n = 0
        try:
            versions = list(
                client.list_crypto_key_versions(
                    request={"parent": client.crypto_key_path(project, region, ring, key)}
                )
            )
        except gexc.NotFound:
            return 0
        for v in versions:
            if str(getattr(v.state, "name", v.state)) in ("ENABLED", "DISABLED"):
                client.destroy_crypto_key_version(request={"name": v.name})
                n += 1
        return n
