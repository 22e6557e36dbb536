"""Flags shared by every command that takes a deployment config."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..ui import remember_output

if TYPE_CHECKING:
    from ..config import DeploymentConfig

# flag name -> config key; version pins go into the `versions` sub-object.
_VERSION_FLAGS = {
    "zenml_chart_version": "zenml_chart",
    "mlflow_chart_version": "mlflow_chart",
    "argocd_version": "argocd",
    "cert_manager_version": "cert_manager",
    "external_secrets_version": "external_secrets",
}
_CHOICE = click.Choice


def _is_root(value: str) -> bool:
    try:
        return Path(value).resolve() == Path("/")
    except (OSError, RuntimeError):  # unresolvable: not the root; later steps say why
        return False


class UserPath(click.Path):
    """`click.Path` that refuses an empty value (it would silently mean the current folder)
    and, with `root_ok=False`, the file system root; an echoed value is cut to a fixed length."""

    def __init__(self, *, root_ok: bool = True, **kwargs: Any) -> None:
        super().__init__(path_type=Path, **kwargs)
        self.root_ok = root_ok

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from ..errors import echo

        if isinstance(value, str) and not value.strip():
            self.fail("an empty path is not allowed (it would mean the current folder)", param, ctx)
        if isinstance(value, str) and "\0" in value:
            self.fail(f"{echo(value)} holds a NUL character; no path can", param, ctx)
        if isinstance(value, str) and len(value) > 4096:
            self.fail(f"{echo(value)} is longer than a path can be", param, ctx)
        if isinstance(value, str) and not self.root_ok and _is_root(value):
            self.fail(
                f"{echo(value)} is the file system root; pass a folder of its own", param, ctx
            )
        return super().convert(value, param, ctx)


# One flag per line reads better than the formatter's layout.
# fmt: off
def _opts() -> list[Callable[[Callable[..., Any]], Callable[..., Any]]]:
    o = click.option
    return [
        o("--config", "config_file", type=UserPath(dir_okay=False, allow_dash=True),
          help="YAML file (- for standard input) with any of the fields below; flags override it."),
        o("--project", help="GCP project ID."),
        o("--region", help="GCP region, e.g. europe-west4."),
        o("--name", help="Deployment name, prefixes every resource [zenml]."),
        o("--domain", help="Serve under zenml.DOMAIN / mlflow.DOMAIN instead of nip.io."),
        o("--acme-email", help="Email for Let's Encrypt."),
        o("--alert-email", help="Email for the stack's alerts [--acme-email]."),
        o("--monitoring/--no-monitoring", default=None,
          help="Uptime checks, alert policies and a dashboard in Cloud Monitoring [on]."),
        o("--dns-zone", help="Cloud DNS zone (ZONE or PROJECT/ZONE) for --domain's A records."),
        o("--create-dns-zone/--no-create-dns-zone", default=None,
          help="Create a public Cloud DNS zone for --domain [off]."),
        o("--acme-challenge", type=_CHOICE(["http01", "dns01"]),
          help="dns01: cert-manager answers through Cloud DNS [http01]."),
        o("--orchestrator", type=_CHOICE(["kubernetes", "vertex"]), help="[kubernetes]"),
        o("--ingress", type=_CHOICE(["gateway", "nginx"]), help="GKE Gateway API or ingress-nginx [gateway]."),
        o("--authorized-network", "authorized_networks", multiple=True,
          help="CIDR allowed to reach the GKE control plane (repeatable)."),
        o("--sql-tier", help="Cloud SQL tier [db-custom-1-3840]."),
        o("--sql-availability", type=_CHOICE(["ZONAL", "REGIONAL"]), help="[ZONAL]"),
        o("--deletion-protection/--no-deletion-protection", default=None, help="[on]"),
        o("--force-destroy-buckets/--no-force-destroy-buckets", default=None, help="[off]"),
        o("--state", help="Pulumi backend: gs://BUCKET, file://DIR or local [gs://PROJECT-NAME-state]."),
        o("--secrets-provider", type=_CHOICE(["gcpkms", "passphrase"]), help="[gcpkms]"),
        o("--connector-auth", type=_CHOICE(["implicit", "service-account"]), help="[implicit]"),
        o("--image-builder", type=_CHOICE(["gcp", "local"]), help="[gcp]"),
        o("--github-repo", help="owner/repo that CI runs in (keyless Workload Identity Federation)."),
        o("--gitops-repo", help="Git URL the root app tracks (after `render --out`)."),
        o("--gitops-path", help="Path inside --gitops-repo [gitops]."),
        o("--gitops-revision", help="Branch or tag of --gitops-repo [HEAD]."),
        o("--gitops-repo-private/--no-gitops-repo-private", default=None,
          help="--gitops-repo needs credentials: infra makes their Secret Manager slot [off]."),
        o("--analytics/--no-analytics", default=None, help="ZenML server analytics [off]."),
        o("--ha/--no-ha", default=None,
          help="Production shape: REGIONAL Cloud SQL, 2+ server replicas across zones [off]."),
        o("--backup-retention-days", type=int, help="Keep backups this many days [30]."),
        o("--zenml-chart-version", help="ZenML server Helm chart [installed zenml version]."),
        o("--mlflow-chart-version", help="MLflow Helm chart version [pinned; `plan` shows it]."),
        o("--argocd-version", help="Argo CD version [pinned; `plan` shows it]."),
        o("--cert-manager-version", help="cert-manager version [pinned; `plan` shows it]."),
        o("--external-secrets-version", help="External Secrets Operator version [pinned; `plan` shows it]."),
    ]


_KEYS = [
    "config_file", "project", "region", "name", "domain", "acme_email", "alert_email", "monitoring", "dns_zone",
    "create_dns_zone", "acme_challenge", "orchestrator", "ingress",
    "authorized_networks", "sql_tier", "sql_availability", "deletion_protection",
    "force_destroy_buckets", "state", "secrets_provider", "connector_auth", "image_builder",
    "github_repo", "gitops_repo", "gitops_path", "gitops_revision", "gitops_repo_private",
    "analytics",
    "ha", "backup_retention_days",
    *_VERSION_FLAGS,
]
# fmt: on


@dataclass
class ConfigSource:
    """The config flags as given; `load()` validates them (raising `ConfigError`)."""

    file: Path | None
    overrides: dict[str, Any] = field(default_factory=dict)

    def load(self) -> DeploymentConfig:
        from ..config import build_config

        return build_config(self.file, self.overrides)


def config_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the config flags; the command receives them as one `config: ConfigSource`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        raw = {k: kwargs.pop(k) for k in _KEYS}
        versions = {v: raw.pop(k) for k, v in _VERSION_FLAGS.items() if raw.get(k) is not None}
        for k in _VERSION_FLAGS:
            raw.pop(k, None)
        file = raw.pop("config_file")
        if versions:
            raw["versions"] = versions
        return func(*args, config=ConfigSource(file, raw), **kwargs)

    for opt in reversed(_opts()):
        wrapper = opt(wrapper)
    return wrapper


def output_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--output",
        "-o",
        "output",
        type=_CHOICE(["text", "json"]),
        default="text",
        callback=remember_output,
        help="`json` prints one machine-readable document on stdout.",
    )(func)


def credentials_from_env_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """`--credentials-from-env`: deploy, register and ci-account read logins the same way
    (`phases.register._pick`)."""
    return click.option(
        "--credentials-from-env",
        is_flag=True,
        help="Log in to ZenML/MLflow with ZENML_STORE_*/MLFLOW_TRACKING_* from the environment "
        "instead of the deployment's own Secret Manager secrets.",
    )(func)


def timeout_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--timeout`: seconds a command may take against the ZenML server."""
    return click.option(
        "--timeout", type=click.FloatRange(min=1), default=300, show_default=True, help=help
    )


def retain_minutes_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--retain-minutes`: how long a rotated-out CI key keeps working."""
    return click.option(
        "--retain-minutes", type=click.IntRange(min=0), default=60, show_default=True, help=help
    )
