"""The `preflight` phase: catch in seconds what would otherwise fail ten minutes into `up`.

Checks, each failure naming its fix: Application Default Credentials; the project is reachable
and has billing; the caller may enable services (and create what the program creates); the
Pulumi CLI is present at a supported version (offering to install it into the data dir); the
pulumi-gcp plugin matches the installed `pulumi_gcp`. Then it prepares the state backend: the
versioned, uniform-access, public-access-prevented bucket `gs://<project>-<name>-state` and the
Cloud KMS key that encrypts the state's secrets (both idempotent, both kept across deploys), or
checks PULUMI_CONFIG_PASSPHRASE for `--secrets-provider passphrase`.

Every Google call goes through `GcpApi`, whose clients (credentials, an AuthorizedSession-like
HTTP session, storage and KMS clients) are injectable: `ctx.options["gcp_api"]` replaces it.
With `dry_run` nothing is created; the outputs say what would be.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..config import user_data_dir
from ..errors import MissingCredentials, UserError
from .infra import PULUMI_ROOT_ENV, find_pulumi_root, gcp_plugin_version, require_passphrase

if TYPE_CHECKING:
    from ..config import DeploymentConfig
    from .base import PhaseContext

MIN_PULUMI = "3.160.0"  # engine events over gRPC and project-scoped diy stacks
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
CRM = "https://cloudresourcemanager.googleapis.com/v3"
BILLING = "https://cloudbilling.googleapis.com/v1"
SERVICE_USAGE = "https://serviceusage.googleapis.com/v1"
# What the Pulumi program does first, and what a missing role most often blocks.
REQUIRED_PERMISSIONS = (
    "serviceusage.services.enable",
    "resourcemanager.projects.setIamPolicy",
    "iam.serviceAccounts.create",
    "storage.buckets.create",
    "cloudkms.keyRings.create",
    "container.clusters.create",
    "cloudsql.instances.create",
)
STATE_SERVICES = ("storage.googleapis.com", "cloudkms.googleapis.com")
IAM = "https://iam.googleapis.com/v1"


def _error_reason(resp: Any) -> str:
    try:
        err = resp.json().get("error", {})
    except ValueError:
        return f"HTTP {resp.status_code}"
    reasons = [d.get("reason", "") for d in err.get("details", []) if isinstance(d, dict)]
    return " ".join(x for x in [err.get("status", ""), *reasons, err.get("message", "")] if x)


class GcpApi:
    """The few Google calls preflight makes, through injectable clients."""

    def __init__(
        self,
        cfg: DeploymentConfig,
        *,
        credentials_fn: Callable[..., tuple[Any, str | None]] | None = None,
        session: Any = None,
        storage_client: Any = None,
        kms_client: Any = None,
        poll_interval: float = 2.0,
    ) -> None:
        self.cfg = cfg
        self._credentials_fn = credentials_fn
        self._creds: Any = None
        self._session = session
        self._storage = storage_client
        self._kms = kms_client
        self.poll_interval = poll_interval

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

    def session(self) -> Any:
        if self._session is None:
            from google.auth.transport.requests import AuthorizedSession

            self._session = AuthorizedSession(self.credentials())  # type: ignore[no-untyped-call]
        return self._session

    def storage(self) -> Any:
        if self._storage is None:
            from google.cloud import storage  # type: ignore[attr-defined,unused-ignore]

            self._storage = storage.Client(project=self.cfg.project, credentials=self.credentials())
        return self._storage

    def kms(self) -> Any:
        if self._kms is None:
            from google.cloud import kms

            self._kms = kms.KeyManagementServiceClient(credentials=self.credentials())
        return self._kms

    def _request(self, method: str, url: str, **kw: Any) -> Any:
        from google.auth import exceptions as gexc

        try:
            return self.session().request(method, url, timeout=30, **kw)
        except gexc.RefreshError:
            raise UserError(
                "your Application Default Credentials have expired or were revoked",
                "run `gcloud auth application-default login` again",
            ) from None

    # -- checks
    def check_project(self, project: str) -> dict[str, Any]:
        resp = self._request("GET", f"{CRM}/projects/{project}")
        if resp.status_code in (403, 404):
            raise UserError(
                f"project {project} does not exist or your account cannot see it",
                "check the project ID (`gcloud projects list`) and that you have a role on it",
            )
        if resp.status_code != 200:
            raise UserError(f"could not read project {project}: {_error_reason(resp)}")
        data: dict[str, Any] = resp.json()
        if data.get("state") not in (None, "ACTIVE"):
            raise UserError(
                f"project {project} is {data.get('state')}",
                "restore it (`gcloud projects undelete`) or choose another project",
            )
        return data

    def check_billing(self, project: str) -> None:
        resp = self._request("GET", f"{BILLING}/projects/{project}/billingInfo")
        if resp.status_code == 403 and "SERVICE_DISABLED" in _error_reason(resp):
            raise UserError(
                "the Cloud Billing API is disabled, so billing cannot be checked",
                f"run `gcloud services enable cloudbilling.googleapis.com --project {project}`",
            )
        if resp.status_code != 200:
            raise UserError(
                f"could not read the billing status of {project}: {_error_reason(resp)}",
                "you need billing.resourceAssociations.list (e.g. roles/viewer) on the project",
            )
        if not resp.json().get("billingEnabled"):
            raise UserError(
                f"billing is not enabled on project {project}",
                f"link a billing account: https://console.cloud.google.com/billing/linkedaccount?project={project}",
            )

    def missing_permissions(self, project: str, permissions: tuple[str, ...]) -> list[str]:
        resp = self._request(
            "POST",
            f"{CRM}/projects/{project}:testIamPermissions",
            json={"permissions": list(permissions)},
        )
        if resp.status_code != 200:
            raise UserError(f"could not test your permissions on {project}: {_error_reason(resp)}")
        granted = set(resp.json().get("permissions", []))
        return [p for p in permissions if p not in granted]

    def project_roles_of(self, project: str, member: str) -> set[str] | None:
        """The project-level roles `member` holds, or None when the policy cannot be read."""
        resp = self._request(
            "POST",
            f"{CRM}/projects/{project}:getIamPolicy",
            json={"options": {"requestedPolicyVersion": 3}},
        )
        if resp.status_code != 200:
            return None
        return {
            str(b.get("role"))
            for b in resp.json().get("bindings", [])
            if member in b.get("members", [])
        }

    def enable_services(
        self, project: str, services: tuple[str, ...], timeout: float = 180
    ) -> None:
        resp = self._request(
            "POST",
            f"{SERVICE_USAGE}/projects/{project}/services:batchEnable",
            json={"serviceIds": list(services)},
        )
        if resp.status_code != 200:
            raise UserError(
                f"could not enable {', '.join(services)}: {_error_reason(resp)}",
                "you need serviceusage.services.enable (roles/serviceusage.serviceUsageAdmin)",
            )
        op = resp.json()
        deadline = time.monotonic() + timeout
        while not op.get("done"):
            if time.monotonic() > deadline:
                raise UserError(
                    f"enabling {', '.join(services)} did not finish in {timeout:.0f}s",
                    "re-run; it resumes",
                )
            time.sleep(self.poll_interval)
            op = self._request("GET", f"{SERVICE_USAGE}/{op['name']}").json()
        if op.get("error"):
            raise UserError(f"enabling {', '.join(services)} failed: {op['error'].get('message')}")

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
        base = f"{IAM}/projects/{project}/locations/global/workloadIdentityPools/{pool}"
        resp = self._request("GET", base)
        if resp.status_code in (403, 404):  # none, or the IAM API is not on yet (new project)
            return {}
        if resp.status_code != 200:
            raise UserError(f"could not read the pool {pool}: {_error_reason(resp)}")
        if resp.json().get("state") == "DELETED":
            if not undelete:
                return {"wif_pool_deleted": base.removeprefix(f"{IAM}/")}
            op = self._request("POST", f"{base}:undelete", json={})
            if op.status_code != 200:
                raise UserError(
                    f"the pool {pool} is soft-deleted and could not be undeleted: "
                    f"{_error_reason(op)}",
                    f"undelete it (`gcloud iam workload-identity-pools undelete {pool} "
                    "--location=global`) or choose another --name",
                )
        found = {"wif_pool": base.removeprefix(f"{IAM}/")}
        prov = self._request("GET", f"{base}/providers/{provider}")
        if prov.status_code == 200 and prov.json().get("state") != "DELETED":
            found["wif_provider"] = f"{found['wif_pool']}/providers/{provider}"
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


def default_build_account_warnings(
    api: GcpApi, cfg: DeploymentConfig, project_number: str | None
) -> list[str]:
    """Our builds never run as the default compute account, but whoever can submit a build
    elsewhere in the project (or attach that account to a VM) can still act as Editor."""
    if not project_number:
        return []
    email = f"{project_number}-compute@developer.gserviceaccount.com"
    roles = api.project_roles_of(cfg.project, f"serviceAccount:{email}")
    if roles is None or "roles/editor" not in roles:
        return []
    return [
        f"the default compute account {email} holds roles/editor on {cfg.project}. This "
        "stack's builds run as their own account, but anything else that runs as the default "
        "account (default Cloud Build, new VMs) can act as Editor: remove that grant "
        f"(`gcloud projects remove-iam-policy-binding {cfg.project} "
        f"--member=serviceAccount:{email} --role=roles/editor`) or set the org policy "
        "iam.automaticIamGrantsForDefaultServiceAccounts"
    ]


def _api(ctx: PhaseContext) -> GcpApi:
    api = ctx.options.get("gcp_api")
    if api is None:
        api = GcpApi(ctx.cfg)
        ctx.options["gcp_api"] = api
    return api


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.lstrip("v").split("-")[0].split(".")[:3])


def ensure_pulumi(cfg: DeploymentConfig, options: dict[str, Any], reporter: Any) -> Any:
    """The Pulumi CLI, installed into the data dir (after asking) when it is missing."""
    from pulumi import automation as auto

    root = find_pulumi_root(options)
    try:
        cmd = auto.PulumiCommand(root=root, skip_version_check=True)
    except OSError:
        cmd = None
    if cmd is None:
        if root and (options.get("pulumi_root") or PULUMI_ROOT_ENV in os.environ):
            raise UserError(
                f"no Pulumi CLI at {root}/bin/pulumi",
                f"fix {PULUMI_ROOT_ENV} / the install, or unset it to use the one in the data dir",
            )
        cmd = _install_pulumi(cfg, options, reporter)
    if not _supported(cmd) and root is None:
        # an old `pulumi` on PATH: offer the pinned version in the data dir instead
        reporter.step(f"The Pulumi CLI on PATH is v{cmd.version}; {MIN_PULUMI} or newer is needed")
        cmd = _install_pulumi(cfg, options, reporter, reason=f"is v{cmd.version}, too old")
    if not _supported(cmd):
        raise UserError(
            f"the Pulumi CLI at {cmd.command} is version {cmd.version or 'unknown'}; 3.x from {MIN_PULUMI} is supported",
            f"upgrade it (https://www.pulumi.com/docs/install/), or unset {PULUMI_ROOT_ENV} so "
            f"preflight can install v{cfg.versions.pulumi_cli} into {user_data_dir() / 'pulumi'}",
        )
    options["pulumi_command"] = cmd
    return cmd


def _supported(cmd: Any) -> bool:
    version = str(cmd.version) if cmd.version else None
    return bool(
        version
        and _version_tuple(version) >= _version_tuple(MIN_PULUMI)
        and _version_tuple(version)[0] == 3
    )


def _install_pulumi(
    cfg: DeploymentConfig, options: dict[str, Any], reporter: Any, reason: str = "is not installed"
) -> Any:
    from pulumi import automation as auto
    from semver import VersionInfo

    version = cfg.versions.pulumi_cli.lstrip("v")
    target = user_data_dir() / "pulumi"
    manual = (
        f"install it yourself: `curl -fsSL https://get.pulumi.com | sh -s -- --version {version}` "
        "(https://www.pulumi.com/docs/install/), then re-run"
    )
    if not options.get("yes"):
        from ..ui import is_interactive

        if not is_interactive():
            raise UserError(
                f"the Pulumi CLI {reason}",
                f"re-run with --yes to let preflight download Pulumi v{version} into {target}, or {manual}",
            )
        import contextlib

        import click

        pause = getattr(reporter, "paused", None)
        with pause() if pause is not None else contextlib.nullcontext():
            ok = click.confirm(
                f"The Pulumi CLI {reason}. Download v{version} into {target}?", default=True
            )
        if not ok:
            raise UserError("the Pulumi CLI is required", manual)
    reporter.step(f"Installing the Pulumi CLI v{version} into {target}")
    installer = options.get("pulumi_installer") or auto.PulumiCommand.install
    try:
        return installer(
            root=str(target), version=VersionInfo.parse(version), skip_version_check=True
        )
    except Exception as e:
        raise UserError(
            f"could not download the Pulumi CLI v{version} ({e.__class__.__name__}: {e})", manual
        ) from None


def check_gcp_plugin(cmd: Any, options: dict[str, Any]) -> dict[str, Any]:
    """Is the provider plugin matching `pulumi_gcp` installed? (infra installs it if not)."""
    want = gcp_plugin_version()
    env = {"PULUMI_HOME": options["pulumi_home"]} if options.get("pulumi_home") else {}
    try:
        out = cmd.run(["plugin", "ls", "--json"], os.getcwd(), env).stdout
        plugins = json.loads(out or "[]") or []
    except Exception:
        plugins = []
    have = sorted(
        {
            str(p.get("version", "")).lstrip("v")
            for p in plugins
            if p.get("name") == "gcp" and p.get("kind") == "resource"
        }
    )
    return {"gcp_plugin": want, "gcp_plugin_installed": want in have, "gcp_plugins_present": have}


class PreflightPhase:
    name = "preflight"

    def run(self, ctx: PhaseContext) -> dict[str, Any]:
        cfg, opts, rep = ctx.cfg, ctx.options, ctx.reporter
        dry = bool(opts.get("dry_run"))
        api = _api(ctx)
        out: dict[str, Any] = {"state_url": cfg.state_url}

        rep.step("Checking Application Default Credentials")
        api.credentials()
        rep.step(f"Checking project {cfg.project} and its billing")
        project = api.check_project(cfg.project)
        out["project_number"] = str(project.get("name", "")).removeprefix("projects/") or None
        api.check_billing(cfg.project)
        rep.step("Checking your permissions")
        missing = api.missing_permissions(cfg.project, REQUIRED_PERMISSIONS)
        if "serviceusage.services.enable" in missing:
            raise UserError(
                f"your account cannot enable services on {cfg.project} (serviceusage.services.enable)",
                "ask for roles/owner, or roles/editor plus roles/resourcemanager.projectIamAdmin",
            )
        if missing:
            raise UserError(
                f"your account lacks {', '.join(missing)} on {cfg.project}",
                "ask for roles/owner, or roles/editor plus roles/resourcemanager.projectIamAdmin",
            )

        out["warnings"] = default_build_account_warnings(api, cfg, out["project_number"])
        for line in out["warnings"]:
            rep.log(f"WARNING: {line}")

        if cfg.names.dns_zone:
            from ..dns import CloudDnsApi, check_dns

            rep.step(f"Checking the Cloud DNS zone for {cfg.domain}")
            dns_api = opts.get("dns_api") or CloudDnsApi(api._request)
            out.update(check_dns(cfg, dns_api, api.missing_permissions))

        rep.step("Checking the Pulumi CLI")
        cmd = ensure_pulumi(cfg, opts, rep)
        out["pulumi_cli"] = cmd.command
        out["pulumi_version"] = str(cmd.version)
        out.update(check_gcp_plugin(cmd, opts))

        if cfg.secrets_provider == "passphrase":
            require_passphrase(cfg)

        ready = True
        if not dry and (not cfg.is_local_backend or cfg.secrets_provider == "gcpkms"):
            rep.step(f"Enabling {', '.join(STATE_SERVICES)}")
            api.enable_services(cfg.project, STATE_SERVICES)
        if not cfg.is_local_backend:
            bucket = cfg.state_url.removeprefix("gs://").split("/")[0]
            exists = api.bucket_exists(bucket)
            out["state_bucket"] = bucket
            if not exists and dry:
                out["state_bucket_action"] = "would create"
                ready = False
            elif not exists:
                rep.step(f"Creating the state bucket gs://{bucket} in {cfg.region}")
                api.create_state_bucket(bucket, cfg.region, cfg.names.labels)
                out["state_bucket_action"] = "created"
            else:
                out["state_bucket_action"] = "exists"
        if cfg.secrets_provider == "gcpkms":
            n = cfg.names
            key = f"{n.state_kms_keyring}/{n.state_kms_key}"
            out["state_kms_key"] = key
            if dry:
                exists = api.kms_key_exists(
                    cfg.project, cfg.region, n.state_kms_keyring, n.state_kms_key
                )
                out["state_kms_key_action"] = "exists" if exists else "would create"
                ready = ready and exists
            else:
                rep.step(f"Ensuring the KMS key {key} for the state's secrets")
                created = api.ensure_kms_key(
                    cfg.project, cfg.region, n.state_kms_keyring, n.state_kms_key
                )
                out["state_kms_key_action"] = "created" if created else "exists"
        out["secrets_provider"] = cfg.secrets_provider
        # A deploy after `destroy` (same name, same project) adopts what GCP kept.
        n = cfg.names
        out["retained"] = api.retained_kms(cfg.project, cfg.region, n.kms_keyring, n.kms_key)
        if cfg.github_repo:
            out["retained"].update(
                api.retained_wif(cfg.project, n.wif_pool, n.wif_provider, undelete=not dry)
            )
        if out["retained"]:
            rep.step(f"Found {', '.join(out['retained'].values())}: the deploy adopts it")
        out["state_ready"] = ready
        return out

    def status(self, ctx: PhaseContext) -> dict[str, Any]:
        api = _api(ctx)
        out: dict[str, Any] = {"reachable": True, "state_url": ctx.cfg.state_url}
        if not ctx.cfg.is_local_backend:
            out["state_bucket_exists"] = api.bucket_exists(
                ctx.cfg.state_url.removeprefix("gs://").split("/")[0]
            )
        return out

    def destroy(self, ctx: PhaseContext) -> None:
        """Nothing: the state bucket and key outlive the deployment unless `purge` is asked for."""

    def purge(self, ctx: PhaseContext) -> dict[str, Any]:
        """destroy --purge-state: delete the default state bucket, destroy the state key's versions."""
        cfg, api = ctx.cfg, _api(ctx)
        out: dict[str, Any] = {}
        if not cfg.is_local_backend:
            bucket = cfg.state_url.removeprefix("gs://").split("/")[0]
            if cfg.state is None:  # only the bucket we made; a user-given bucket may hold more
                ctx.reporter.step(f"Deleting the state bucket gs://{bucket}")
                api.delete_bucket(bucket)
                out["state_bucket"] = "deleted"
            else:
                out["state_bucket"] = "kept (given with --state)"
        if cfg.secrets_provider == "gcpkms":
            n = cfg.names
            ctx.reporter.step(
                f"Destroying the versions of the KMS key {n.state_kms_keyring}/{n.state_kms_key}"
            )
            out["state_kms_key_versions_destroyed"] = api.destroy_key_versions(
                cfg.project, cfg.region, n.state_kms_keyring, n.state_kms_key
            )
        return out
