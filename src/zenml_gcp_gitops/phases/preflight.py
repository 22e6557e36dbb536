"""The `preflight` phase: catch in seconds what would otherwise fail ten minutes into `up`.

Checks, each failure naming its fix: Application Default Credentials; the project is reachable
and has billing; the caller may enable services (and create what the program creates); the
Pulumi CLI is present at a supported version (offering to install it into the data dir); the
pulumi-gcp plugin matches the installed `pulumi_gcp`. Then it prepares the state backend: the
versioned, uniform-access, public-access-prevented bucket `gs://<project>-<name>-state` and the
Cloud KMS key that encrypts the state's secrets (both idempotent, both kept across deploys), or
checks PULUMI_CONFIG_PASSPHRASE for `--secrets-provider passphrase`.

Every Google call goes through `gcp.api.GcpApi` (the Google Cloud client libraries, their
errors mapped to the fix); `ctx.services.gcp_api` replaces it with one on injected clients.
With `dry_run` nothing is created; the outputs say what would be.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from ..errors import UserError
from ..gcp.api import GcpApi
from ..infra.cli import check_gcp_plugin, ensure_pulumi
from ..infra.stack import require_passphrase

if TYPE_CHECKING:
    from ..config import DeploymentConfig
    from .base import PhaseContext

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
# What the Pulumi program calls before it can enable anything itself: Resource Manager (the
# project lookup, project IAM, audit configs) and Service Usage. With user credentials the
# calls may work anyway; with a service account they need the API on in its project too.
PROGRAM_SERVICES = ("cloudresourcemanager.googleapis.com", "serviceusage.googleapis.com")


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


class PreflightPhase:
    name = "preflight"

    def __init__(self) -> None:
        self._api: GcpApi | None = None

    def _gcp(self, ctx: PhaseContext) -> GcpApi:
        """The injected API, else one set of real clients for this phase's calls."""
        if ctx.services.gcp_api is not None:
            return cast(GcpApi, ctx.services.gcp_api)
        if self._api is None:
            self._api = GcpApi(ctx.cfg)
        return self._api

    def run(self, ctx: PhaseContext) -> dict[str, Any]:
        cfg, opts, rep = ctx.cfg, ctx.options, ctx.reporter
        dry = ctx.dry_run
        api = self._gcp(ctx)
        out: dict[str, Any] = {"state_url": cfg.state_url}

        rep.step("Checking Application Default Credentials")
        api.credentials()
        rep.step(f"Checking project {cfg.project} and its billing")
        out["project_number"] = api.check_project(cfg.project)
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

        if cfg.data_access_logs:
            # Kept from the first deploy: later reads would see the program's own config.
            earlier = ctx.recorded.get("preflight", {})
            if "audit_prior" in earlier:
                out["audit_prior"] = earlier["audit_prior"]
            elif earlier:
                # deployed by a version that replaced the configs: what is there is ours
                out["audit_prior"] = {}
            else:
                rep.step("Reading the project's audit configs")
                from ..gcp.audit import DATA_ACCESS_SERVICES

                out["audit_prior"] = api.audit_configs(cfg.project, DATA_ACCESS_SERVICES)
            for service in out["audit_prior"]:
                rep.log(
                    f"{service} has an audit config: the stack's Data Access logs merge with it"
                )

        out["warnings"] = default_build_account_warnings(api, cfg, out["project_number"])
        for line in out["warnings"]:
            rep.log(f"WARNING: {line}")

        if cfg.names.dns_zone:
            from ..gcp.dns import CloudDnsApi, check_dns

            rep.step(f"Checking the Cloud DNS zone for {cfg.domain}")
            dns_api = ctx.services.dns_api or CloudDnsApi(api.dns)
            out.update(check_dns(cfg, dns_api, api.missing_permissions))

        rep.step("Checking the Pulumi CLI")
        cmd = ensure_pulumi(
            cfg,
            rep,
            pulumi_root=opts.pulumi_root,
            yes=opts.yes,
            installer=ctx.services.pulumi_installer,
        )
        out["pulumi_cli"] = cmd.command
        out["pulumi_version"] = str(cmd.version)
        out.update(check_gcp_plugin(cmd, opts.pulumi_home))

        if cfg.secrets_provider == "passphrase":
            require_passphrase(cfg)

        ready = True
        needed: tuple[str, ...] = PROGRAM_SERVICES
        if not cfg.is_local_backend or cfg.secrets_provider == "gcpkms":
            needed += STATE_SERVICES
        if dry:
            off = api.disabled_services(cfg.project, needed)
            if off:
                out["services_to_enable"] = off
                rep.step(f"Would enable {', '.join(off)}")
        else:
            rep.step(f"Enabling {', '.join(needed)}")
            out["services_enabled"] = api.enable_services(cfg.project, needed)
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
        api = self._gcp(ctx)
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
        cfg, api = ctx.cfg, self._gcp(ctx)
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
