"""The one typed config: every name, region and version of a deployment comes from here.

`DeploymentConfig` holds what the user chose; `Names` derives every resource name from it,
so a name is spelled once. Loading merges a YAML file with flags (flags win) and turns every
validation problem into a `ConfigError` that names the field and the fix.

It is longer than most modules on purpose: every field's validation and every derived name
sit together, so one file answers "what can this setting be, and what is it called in GCP".
"""

from __future__ import annotations

import ipaddress
import os
import re
import unicodedata
from collections.abc import Iterator
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .sql_settings import SQL_DATABASE_FLAGS as SQL_DATABASE_FLAGS  # the instance's flags
from .sql_settings import log_retention_days

PULUMI_PROJECT = "zenml-gcp-gitops"
PAUSED_KEY = "paused"  # the Pulumi stack config input `pause` sets (docs/operations.md)
SECRET_MARK = "[secret]"  # what stands in every output for a secret value
LABEL_DEPLOYMENT = (
    "gcp-gitops"  # the value of the `zenml:deployment` label on everything we register
)

# Regions where both GKE Autopilot and Cloud SQL for MySQL are offered.
SUPPORTED_REGIONS: frozenset[str] = frozenset(
    """
    africa-south1 asia-east1 asia-east2 asia-northeast1 asia-northeast2 asia-northeast3
    asia-south1 asia-south2 asia-southeast1 asia-southeast2 australia-southeast1
    australia-southeast2 europe-central2 europe-north1 europe-north2 europe-southwest1
    europe-west1 europe-west2 europe-west3 europe-west4 europe-west6 europe-west8 europe-west9
    europe-west10 europe-west12 me-central1 me-central2 me-west1 northamerica-northeast1
    northamerica-northeast2 northamerica-south1 southamerica-east1 southamerica-west1
    us-central1 us-east1 us-east4 us-east5 us-south1 us-west1 us-west2 us-west3 us-west4
    """.split()
)

# VPC ranges the program creates and the cluster's network policies name as well.
PROXY_CIDR = "10.10.16.0/23"  # Envoy proxies of the regional external Application LB
PSA_PREFIX_LENGTH = 20  # Cloud SQL's private-services-access allocation (a /20 block)

_PROJECT_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_DNS_LABEL_RE = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")
_FQDN_RE = re.compile(r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_GITHUB_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$")
_SQL_TIER_RE = re.compile(r"^db-[a-z0-9-]+$")
_VERSION_RE = re.compile(r"^v?\d+\.\d+\.\d+([.-][0-9A-Za-z.-]+)?$")
# a Cloud DNS managed zone: `zone` (in this project) or `project/zone`
_DNS_ZONE_RE = re.compile(
    r"^(?:([a-z][a-z0-9-]{4,28}[a-z0-9])/)?([a-z]([a-z0-9-]{0,61}[a-z0-9])?)$"
)

# A ref name as `git check-ref-format` accepts it (plus HEAD and commit SHAs, which pass too).
_GIT_REF_BAD_RE = re.compile(r"(\.\.|@\{|//|/\.|^\.|^/|/$|\.$|\.lock$|\.lock/|[\s~^:?*\[\\]|^@$)")
_GITOPS_PATH_PART_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
# `scheme://userinfo@`: a user name with a password, or any user name on http(s), where it
# is a token in practice.
_URL_USERINFO_RE = re.compile(r"^([a-z][a-z0-9+.-]*)://([^/@\s]*)@", re.I)
GKE_MAX_AUTHORIZED_NETWORKS = 50  # GKE's limit of control-plane authorised networks

# What the loader reads: a config file is a few hundred bytes; a device that never ends
# (/dev/zero) or a runaway pipe must end in one line, not in memory exhaustion.
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_DEPTH = 16
ECHO_MAX = 80  # characters of a bad value shown in an error line

_NAME_MIN, _NAME_MAX = 3, 20
_SA_ID_MIN, _SA_ID_MAX = 6, 30
_BUCKET_MIN, _BUCKET_MAX = 3, 63


@cache
def installed_zenml_version() -> str:
    """The zenml client version, read without importing zenml (that costs seconds)."""
    try:
        return metadata.version("zenml")
    except metadata.PackageNotFoundError:  # pragma: no cover - zenml is a dependency
        return "0.98.0"


class Versions(BaseModel):
    """Pinned versions of everything the deployment installs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    zenml_chart: str = Field(default_factory=installed_zenml_version)
    mlflow_chart: str = "1.11.5"
    mlflow: str = "3.15.1"  # the MLflow server image (the chart's appVersion)
    argocd: str = "v3.5.0"
    cert_manager: str = "v1.19.1"
    external_secrets: str = "2.5.0"
    ingress_nginx: str = "4.13.3"
    pulumi_cli: str = "3.225.0"

    @field_validator("*")
    @classmethod
    def _semver(cls, v: str) -> str:
        if not _VERSION_RE.match(v):
            raise ValueError(f"'{v}' is not a version like 1.2.3")
        return v


class Estimate(BaseModel):
    """Usage the monthly cost estimate assumes where the plan cannot know it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gcs_gb: float = Field(default=50, ge=0)  # both buckets together
    registry_gb: float = Field(default=10, ge=0)  # Artifact Registry images
    nat_gb: float = Field(default=20, ge=0)  # egress through Cloud NAT per month
    nat_vms: int = Field(default=3, ge=0)  # Autopilot nodes using the NAT gateway
    logging_gb: float = Field(default=10, ge=0)  # workload and platform logs per month
    # Data Access audit logs (data_access_logs): one entry per object or secret access
    storage_operations: float = Field(default=1_000_000, ge=0)  # object reads+writes a month
    secret_accesses: float = Field(default=50_000, ge=0)  # secret reads a month
    audit_entry_kib: float = Field(default=1.5, gt=0)  # one audit log entry
    flow_logs_gb: float = Field(default=10, ge=0)  # VPC flow logs a month at 100 % sampling
    sql_data_gb: float | None = Field(default=None, ge=0)  # None: the disk size
    sql_change_gb_per_day: float = Field(default=0.1, ge=0)  # what each backup adds
    backups_per_month: float = Field(default=4, ge=0)  # `zenml-gcp-gitops backup` runs
    # how long on-demand backups are kept; None: backup_retention_days, since `backup`
    # deletes its own runs past it (runs taken by other means are kept until deleted)
    on_demand_backup_months: float | None = Field(default=None, ge=0)
    sql_backup_gb: float | None = Field(default=None, ge=0)  # overrides the computed size


class DeploymentConfig(BaseModel):
    """What the user chose. Immutable; derived names live in `names`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str
    region: str
    name: str = "zenml"
    domain: str | None = None
    acme_email: str | None = None
    # Uptime checks, alert policies and a dashboard in Cloud Monitoring (docs/operations.md).
    monitoring: bool = True
    alert_email: str | None = None  # who gets the alerts; None: acme_email, if any
    orchestrator: Literal["kubernetes", "vertex"] = "kubernetes"
    ingress: Literal["gateway", "nginx"] = "gateway"
    authorized_networks: tuple[str, ...] = ()
    sql_tier: str = "db-custom-1-3840"
    sql_availability: Literal["ZONAL", "REGIONAL"] = "ZONAL"
    deletion_protection: bool = True
    force_destroy_buckets: bool = False
    versions: Versions = Field(default_factory=Versions)
    state: str | None = None
    secrets_provider: Literal["gcpkms", "passphrase"] = "gcpkms"
    connector_auth: Literal["implicit", "service-account"] = "implicit"
    image_builder: Literal["gcp", "local"] = "gcp"
    github_repo: str | None = None
    gitops_repo: str | None = None
    gitops_path: str = "gitops"
    gitops_revision: str = "HEAD"
    # a private --gitops-repo: infra makes a Secret Manager slot for its credentials
    gitops_repo_private: bool = False
    analytics: bool = False
    registry_keep_versions: int = Field(default=10, ge=1, le=1000)
    noncurrent_version_days: int = Field(default=30, ge=1, le=3650)
    # Logs for incident response (docs/infra.md, "Security controls").
    flow_log_sampling: float = Field(default=0.5, ge=0.0, le=1.0)  # 0 turns VPC flow logs off
    data_access_logs: bool = True
    bucket_access_logs: bool = False
    binary_authorization: bool = False
    # GitHub's immutable IDs for `github_repo`; looked up once at deploy when absent.
    github_repo_id: int | None = Field(default=None, ge=1)
    github_owner_id: int | None = Field(default=None, ge=1)
    github_ref: str | None = None
    backup_retention_days: int = Field(default=30, le=365)
    ha: bool = False
    dns_zone: str | None = None
    create_dns_zone: bool = False
    acme_challenge: Literal["http01", "dns01"] = "http01"
    estimate: Estimate = Field(default_factory=Estimate)

    @field_validator("backup_retention_days")
    @classmethod
    def _backup_retention(cls, v: int) -> int:
        log_retention_days(v)  # raises with the rule when v is too small
        return v

    @field_validator("project")
    @classmethod
    def _project(cls, v: str) -> str:
        if not _PROJECT_RE.match(v) or "--" in v:
            raise ValueError(
                f"'{v}' is not a GCP project ID: use 6-30 lowercase letters, digits and hyphens, "
                "starting with a letter and not ending with a hyphen"
            )
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        if v not in SUPPORTED_REGIONS:
            zone = re.match(r"^(.+)-[a-z]$", v)
            if zone and zone.group(1) in SUPPORTED_REGIONS:
                raise ValueError(f"'{v}' is a zone; use its region '{zone.group(1)}'")
            near = sorted(r for r in SUPPORTED_REGIONS if r.split("-")[0] == v.split("-")[0])
            hint = f"; nearby: {', '.join(near[:6])}" if near else ""
            raise ValueError(
                f"'{v}' is not a region with both GKE Autopilot and Cloud SQL{hint} "
                "(the README lists them)"
            )
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_MIN <= len(v) <= _NAME_MAX or not _DNS_LABEL_RE.match(v):
            raise ValueError(
                f"'{v}' must be a DNS label of {_NAME_MIN}-{_NAME_MAX} characters: lowercase "
                "letters, digits and hyphens, starting with a letter"
            )
        return v

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = v.lower().rstrip(".")
        if not _FQDN_RE.match(v):
            raise ValueError(f"'{v}' is not a domain name such as ml.example.com")
        return v

    @field_validator("acme_email", "alert_email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is not None and not _EMAIL_RE.match(v):
            raise ValueError(f"'{v}' is not an email address")
        return v

    @field_validator("authorized_networks", mode="before")
    @classmethod
    def _cidrs_in(cls, v: object) -> object:
        if isinstance(v, str):
            return tuple(s.strip() for s in v.split(",") if s.strip())
        return v

    @field_validator("authorized_networks")
    @classmethod
    def _cidrs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(v) > GKE_MAX_AUTHORIZED_NETWORKS:
            raise ValueError(
                f"{len(v)} networks given, but GKE accepts at most "
                f"{GKE_MAX_AUTHORIZED_NETWORKS}: merge them into wider ranges"
            )
        out: list[str] = []
        for cidr in v:
            try:
                net = ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"'{cidr}' is not a CIDR such as 203.0.113.0/24") from None
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError:
                address = cidr.split("/")[0].strip()
                raise ValueError(
                    f"'{cidr}' has host bits set: did you mean {net}? (or {address}/"
                    f"{net.max_prefixlen} for that one address)"
                ) from None
            if net.prefixlen == 0:
                raise ValueError(
                    f"'{cidr}' opens the GKE control plane to the whole internet; list your "
                    "office or VPN ranges instead, or none (the DNS endpoint is IAM-authorised)"
                )
            out.append(str(net))
        return tuple(out)

    @field_validator("sql_tier")
    @classmethod
    def _tier(cls, v: str) -> str:
        if not _SQL_TIER_RE.match(v):
            raise ValueError(f"'{v}' is not a Cloud SQL tier such as db-custom-1-3840")
        return v

    @field_validator("github_repo")
    @classmethod
    def _gh(cls, v: str | None) -> str | None:
        if v is not None and not _GITHUB_REPO_RE.match(v):
            raise ValueError(f"'{v}' is not a GitHub repository in the form owner/repo")
        return v

    @field_validator("github_ref")
    @classmethod
    def _gh_ref(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^refs/(heads|tags)/[A-Za-z0-9._/-]+$", v):
            raise ValueError(f"'{v}' is not a Git ref such as refs/heads/main")

        return v

    @field_validator("gitops_path")
    @classmethod
    def _gitops_path(cls, v: str) -> str:
        path = v if v.startswith("/") else v.removeprefix("./").strip("/")
        if path in ("", "."):
            return "."
        parts = path.split("/")
        if v.startswith("/") or not all(_GITOPS_PATH_PART_RE.match(p) for p in parts):
            raise ValueError(
                f"'{v}' is not a folder inside the repository: use a relative path such as "
                "gitops or deploy/gitops, without '..', '.' parts or a leading /"
            )
        return path

    @field_validator("gitops_revision")
    @classmethod
    def _gitops_revision(cls, v: str) -> str:
        if not v or len(v) > 255 or _GIT_REF_BAD_RE.search(v):
            raise ValueError(
                f"'{v}' is not a Git branch, tag or commit: ref names have no spaces, "
                "'..', '~', '^', ':', '?', '*', '[' or '\\', and do not end in '.' or '.lock'"
            )
        return v

    @field_validator("gitops_repo")
    @classmethod
    def _gitops_repo(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^(https://|ssh://|git@)\S+$", v):
            raise ValueError(f"'{v}' is not a Git URL (https://…, ssh://… or git@…)")
        return v

    @field_validator("dns_zone")
    @classmethod
    def _dns_zone(cls, v: str | None) -> str | None:
        if v is not None and not _DNS_ZONE_RE.match(v):
            raise ValueError(
                f"'{v}' is not a Cloud DNS managed zone: give its name (my-zone), or "
                "project/zone for a zone in another project"
            )
        return v

    @model_validator(mode="after")
    def _dns_consistent(self) -> DeploymentConfig:
        managed = self.dns_zone is not None or self.create_dns_zone
        if managed and self.domain is None:
            flag = "dns_zone" if self.dns_zone is not None else "create_dns_zone"
            raise ValueError(f"{flag}: Cloud DNS records need a domain: pass --domain as well")
        if self.dns_zone is not None and self.create_dns_zone:
            raise ValueError(
                "create_dns_zone: choose one: --dns-zone uses an existing zone, "
                "--create-dns-zone makes a new one"
            )
        if self.acme_challenge == "dns01" and not managed:
            raise ValueError(
                "acme_challenge: dns01 answers through Cloud DNS: pass --dns-zone or "
                "--create-dns-zone (with --domain)"
            )
        return self

    @field_validator("state")
    @classmethod
    def _state(cls, v: str | None) -> str | None:
        if v is None or v == "local":
            return v
        if not re.match(r"^(gs://[a-z0-9][a-z0-9._-]{1,61}[a-z0-9](/\S*)?|file://\S+)$", v):
            raise ValueError(f"'{v}' is not a state backend: use gs://BUCKET, file://DIR or local")
        return v

    @model_validator(mode="before")
    @classmethod
    def _plain_text(cls, data: object) -> object:
        """Every string of every field, including those of nested objects: printable, and no
        credentials in URLs. Runs before the per-field checks so they never echo such a value."""
        if isinstance(data, dict):
            check_strings(data)
        return data

    @model_validator(mode="after")
    def _derived_names_fit(self) -> DeploymentConfig:
        names = self.names
        for label, sa in names.service_accounts.items():
            if not _SA_ID_MIN <= len(sa) <= _SA_ID_MAX:
                raise ValueError(
                    f"name: '{self.name}' gives the service account ID '{sa}' ({label}), but "
                    f"IDs must be {_SA_ID_MIN}-{_SA_ID_MAX} characters: choose a name of 3-20 "
                    "characters"
                )
        if (
            self.ha
            and "sql_availability" in self.model_fields_set
            and (self.sql_availability != "REGIONAL")
        ):
            raise ValueError(
                "sql_availability: ha needs a REGIONAL Cloud SQL instance; drop "
                "sql_availability (ha sets it) or set it to REGIONAL"
            )
        for bucket in (
            names.artifact_bucket,
            names.mlflow_bucket,
            names.state_bucket,
            names.access_log_bucket,
            names.backup_bucket,
        ):
            if not _BUCKET_MIN <= len(bucket) <= _BUCKET_MAX:
                raise ValueError(
                    f"name: bucket name '{bucket}' must be {_BUCKET_MIN}-{_BUCKET_MAX} "
                    "characters: choose a shorter name"
                )
            if "google" in bucket:  # GCS refuses bucket names containing "google"
                field = "name" if "google" in self.name else "project"
                raise ValueError(
                    f"{field}: bucket name '{bucket}' may not contain 'google': choose another "
                    f"{field}"
                )
        return self

    @property
    def sql_log_retention_days(self) -> int:
        """Days of binary logs (point-in-time recovery), fewer than the retained backups."""
        return log_retention_days(self.backup_retention_days)

    @property
    def sql_availability_effective(self) -> str:
        """`ha` makes the instance REGIONAL (a standby in a second zone)."""
        return "REGIONAL" if self.ha else self.sql_availability

    @property
    def alert_email_effective(self) -> str | None:
        """Where alerts go: `alert_email`, else the Let's Encrypt address, else nobody."""
        return self.alert_email or self.acme_email

    @property
    def names(self) -> Names:
        return Names(self)

    @property
    def state_url(self) -> str:
        """The Pulumi backend URL: a GCS bucket by default."""
        if self.state is None:
            return f"gs://{self.names.state_bucket}"
        if self.state == "local":
            return "file://" + str(user_data_dir() / "state" / self.name)
        return self.state

    @property
    def is_local_backend(self) -> bool:
        return self.state_url.startswith("file://")

    def hostnames(self, ingress_ip: str) -> tuple[str, str]:
        """(zenml host, mlflow host): subdomains of `domain`, else nip.io names of the static IP."""
        base = self.domain or f"{ingress_ip}.nip.io"
        return f"zenml.{base}", f"mlflow.{base}"

    def redacted(self) -> dict[str, Any]:
        """The config as plain data for plans and records; credentials in URLs are masked."""
        data = self.model_dump(mode="json")
        for key in ("gitops_repo", "state"):
            if isinstance(data.get(key), str):
                data[key] = re.sub(r"//[^/@]+@", "//[secret]@", data[key])
        return data


class ZenmlNames:
    """The ZenML objects of one stack, all named from its stack name: the GCP stack and the
    local rehearsal's have the same shape and differ only in the stem and the provider label."""

    def __init__(self, prefix: str, stack: str, provider: str) -> None:
        self.prefix = prefix
        self.zenml_stack = stack
        self.zenml_components = {
            "artifact_store": f"{stack}-artifacts",
            "container_registry": f"{stack}-registry",
            "orchestrator": f"{stack}-orchestrator",
            "experiment_tracker": f"{stack}-mlflow",
            "image_builder": f"{stack}-image-builder",
        }
        self.zenml_mlflow_secret = f"{stack}-mlflow-credentials"
        self.zenml_ci_account = f"{prefix}-ci"
        self.zenml_ci_key = "ci"
        self.zenml_labels = {
            "zenml:provider": provider,
            "zenml:deployment": LABEL_DEPLOYMENT,
            "zenml:name": prefix,
        }


class Names(ZenmlNames):
    """Every derived name of a deployment, computed in one place."""

    def __init__(self, cfg: DeploymentConfig) -> None:
        super().__init__(prefix=cfg.name, stack=cfg.name, provider="gcp")
        self.cfg = cfg
        n, p = cfg.name, cfg.project
        self.pulumi_project = PULUMI_PROJECT
        self.pulumi_stack = n
        self.state_bucket = f"{p}-{n}-state"
        self.state_kms_keyring = f"{n}-pulumi-state"
        self.state_kms_key = "state"
        # network
        self.network = f"{n}-vpc"
        self.subnet = f"{n}-nodes"
        self.pods_range = f"{n}-pods"
        self.services_range = f"{n}-services"
        self.router = f"{n}-router"
        self.nat = f"{n}-nat"
        self.psa_range = f"{n}-psa"
        self.ingress_ip = f"{n}-ingress"
        self.proxy_subnet = f"{n}-proxy"  # Envoy proxies of the regional external gateway
        # compute, data, storage
        self.cluster = f"{n}-gke"
        self.node_service_account = f"{n}-nodes"  # GKE nodes: logs, metrics, image pulls
        self.sql_instance = f"{n}-mysql"
        # mlflow_auth: MLflow's users and permissions (its basic-auth database), apart from
        # the tracking data, with its own user
        self.databases = {"zenml": "zenml", "mlflow": "mlflow", "mlflow_auth": "mlflow_auth"}
        self.sql_users = {"zenml": "zenml", "mlflow": "mlflow", "mlflow_auth": "mlflow_auth"}
        self.artifact_bucket = f"{p}-{n}-artifacts"
        self.mlflow_bucket = f"{p}-{n}-mlflow"
        self.access_log_bucket = f"{p}-{n}-access-logs"  # only with bucket_access_logs
        self.backup_bucket = f"{p}-{n}-backups"
        self.registry_repo = f"{n}-images"
        self.registry_uri = f"{cfg.region}-docker.pkg.dev/{p}/{self.registry_repo}"
        self.kms_keyring = f"{n}-keyring"
        self.kms_key = f"{n}-storage"
        # ZenML's GCP secrets store uses the custom roles ZenML documents (role IDs: [a-zA-Z0-9_.])
        self.secrets_store_roles = {
            "creator": f"{n.replace('-', '_')}_zenml_secrets_creator",
            "editor": f"{n.replace('-', '_')}_zenml_secrets_editor",
        }
        # initial admin accounts (their passwords are generated into Secret Manager)
        self.admin_users = {"zenml": "admin", "mlflow": "admin"}
        # one Google service account per workload (IDs are 6-30 characters)
        self.service_accounts: dict[str, str] = {
            "zenml_server": f"{n}-server",
            "mlflow": f"{n}-mlflow",
            "pipelines": f"{n}-pipelines",
            "external_secrets": f"{n}-eso",
        }
        if cfg.image_builder == "gcp":
            # Cloud Build runs as this account, never as the project's default build account
            self.service_accounts["build"] = f"{n}-build"
        if cfg.github_repo:
            self.service_accounts["ci"] = f"{n}-ci"
        # Who may submit builds gets this custom role (create and poll builds, nothing else).
        self.build_submitter_role = f"{n.replace('-', '_')}_build_submitter"
        # Where ZenML's image builders upload build contexts inside the artifact bucket.
        self.build_context_prefix = "cloud-build-contexts"
        # Cloud Monitoring: display names carry the deployment name (two stacks, one project)
        self.uptime_checks = {"zenml": f"{n} ZenML server", "mlflow": f"{n} MLflow server"}
        self.alert_prefix = f"{n}: "
        self.dashboard = f"{n} stack"
        self.notification_channel = f"{n} alerts"
        self.wif_pool = f"{n}-github"
        self.wif_provider = "github"
        # Secret Manager IDs start with the deployment name, never `zenml-`: ZenML's secrets
        # store is granted every `zenml-*` secret. The default name `zenml` (or `zenml-…`)
        # would produce exactly that prefix, so those names get `stack-` in front.
        sp = f"stack-{n}" if n == "zenml" or n.startswith("zenml-") else n
        self.secret_prefix = sp
        self.secrets: dict[str, str] = {
            "zenml_db_password": f"{sp}-mysql-zenml",
            "mlflow_db_password": f"{sp}-mysql-mlflow",
            "mlflow_auth_db_password": f"{sp}-mysql-mlflow-auth",
            "zenml_admin": f"{sp}-zenml-admin",
            "zenml_jwt": f"{sp}-zenml-jwt",
            "mlflow_auth": f"{sp}-mlflow-auth",
            "mlflow_flask": f"{sp}-mlflow-flask-key",
            "ci_api_key": f"{sp}-ci-zenml-api-key",
        }
        if cfg.connector_auth == "service-account":
            self.secrets["pipelines_sa_key"] = f"{sp}-pipelines-key"
        if cfg.gitops_repo and cfg.gitops_repo_private:
            # created without a version: the user adds {"username", "password"} (a token)
            self.secrets["gitops_repo"] = f"{sp}-gitops-repo"
        # Kubernetes (one cluster per deployment, so namespaces need no prefix)
        self.namespaces = {
            "argocd": "argocd",
            "external_secrets": "external-secrets",
            "cert_manager": "cert-manager",
            "ingress": "ingress-nginx",
            "gateway": "gateway",
            "zenml": "zenml",
            "mlflow": "mlflow",
            "pipelines": "zenml-pipelines",
        }
        self.ksas = {
            "zenml_server": "zenml-server",
            "mlflow": "mlflow",
            "pipelines": "zenml-pipelines",
            "external_secrets": "external-secrets",
            "cert_manager": "cert-manager",  # the chart's controller (DNS-01 identity)
        }
        self.argocd_project = n
        self.argocd_root_app = f"{n}-root"
        # GitOps (issue 4): child Applications, Helm releases and in-cluster object names
        self.argocd_apps = {
            "external_secrets": f"{n}-external-secrets",
            "cert_manager": f"{n}-cert-manager",
            "ingress_nginx": f"{n}-ingress-nginx",
            "platform": f"{n}-platform",
            "workloads": f"{n}-workloads",
            "zenml_server": f"{n}-zenml-server",
            "mlflow": f"{n}-mlflow",
        }
        self.helm_releases = {
            "external_secrets": "external-secrets",
            "cert_manager": "cert-manager",
            "ingress_nginx": "ingress-nginx",
            "zenml_server": "zenml-server",
            "mlflow": "mlflow",
        }
        self.argocd_repo_secrets = {
            "zenml_chart": f"{n}-zenml-chart-repo",
            "gitops": f"{n}-gitops-repo",
        }
        self.cluster_secret_store = f"{n}-secret-manager"
        self.cluster_issuers = {
            "staging": f"{n}-letsencrypt-staging",
            "prod": f"{n}-letsencrypt-prod",
        }
        self.gateway = f"{n}-gateway"
        self.gateway_class = "gke-l7-regional-external-managed"
        self.ingress_class = "nginx"
        self.tls_secrets = {"zenml": "zenml-tls", "mlflow": "mlflow-tls"}
        # Kubernetes Secrets that ESO writes (logical secret key -> Secret name in its namespace)
        self.k8s_secrets = {
            "zenml_db_password": "zenml-db",
            "zenml_admin": "zenml-admin",
            "zenml_jwt": "zenml-jwt",
            "mlflow_db_password": "mlflow-db",
            "mlflow_flask": "mlflow-flask",
        }
        # MLflow's basic_auth.ini, rendered by ESO from two Secret Manager secrets
        self.mlflow_auth_config_secret = "mlflow-auth-config"
        self.sql_ca_configmap = "cloudsql-server-ca"  # the Cloud SQL server CA (public data)
        self.pipelines_role = "zenml-pipelines"
        # Cloud DNS: the zone holding the A records (only with a domain and dns_zone or
        # create_dns_zone); a zone we create is named after the deployment and the domain.
        self.dns_zone: str | None = None
        self.dns_zone_project = p
        if cfg.dns_zone:
            head, _, tail = cfg.dns_zone.rpartition("/")
            self.dns_zone, self.dns_zone_project = tail, head or p
        elif cfg.create_dns_zone and cfg.domain:
            self.dns_zone = f"{n}-{cfg.domain.replace('.', '-')}"[:63].rstrip("-")
        self.dns_records: dict[str, str] = (
            {app: f"{app}.{cfg.domain}." for app in ("zenml", "mlflow")}
            if self.dns_zone and cfg.domain
            else {}
        )
        # cert-manager's DNS-01 solver: its own Google account, dns.admin on the zone only
        self.dns01_account = f"{n}-dns01"
        # ZenML objects
        self.zenml_local_stack = f"{n}-local"
        self.zenml_connector = f"{n}-gcp"

    def workload_identity_member(self, ksa_key: str, namespace_key: str) -> str:
        """The IAM member a Kubernetes service account impersonates its Google account as."""
        return (
            f"serviceAccount:{self.cfg.project}.svc.id.goog"
            f"[{self.namespaces[namespace_key]}/{self.ksas[ksa_key]}]"
        )

    @property
    def dns01_email(self) -> str:
        return f"{self.dns01_account}@{self.cfg.project}.iam.gserviceaccount.com"

    def sa_email(self, key: str) -> str:
        return f"{self.service_accounts[key]}@{self.cfg.project}.iam.gserviceaccount.com"

    @property
    def labels(self) -> dict[str, str]:
        """GCP resource labels (keys and values: lowercase, digits, - and _)."""
        return {"managed-by": "zenml-gcp-gitops", "deployment": self.prefix}


class LocalNames(ZenmlNames):
    """Names of the local rehearsal (`--local`), derived from the deployment name alone.

    Locally there is no project or region, so no placeholder for them can leak into a name.
    The stack name equals `Names.zenml_local_stack` of any config with the same `name`.
    """

    def __init__(self, name: str = "zenml") -> None:
        if not _NAME_MIN <= len(name) <= _NAME_MAX or not _DNS_LABEL_RE.match(name):
            raise ConfigError(
                f"name: {echo(name)} must be a DNS label of {_NAME_MIN}-{_NAME_MAX} characters",
                "use lowercase letters, digits and hyphens, starting with a letter",
            )
        n = name
        super().__init__(prefix=n, stack=f"{n}-local", provider="local")
        # Emulated buckets live on loopback only; real bucket names are global, these are not.
        self.artifact_bucket = f"{n}-local-artifacts"
        self.mlflow_bucket = f"{n}-local-mlflow"
        self.ci_api_key_secret = f"{n}-ci-zenml-api-key"


def user_data_dir() -> Path:
    """Where records, logs and local state live (XDG on Linux, overridable for tests)."""
    env = os.environ.get("ZENML_GCP_GITOPS_HOME")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "zenml-gcp-gitops"


def echo_path(path: object, limit: int = 160) -> str:
    """A path as an error line shows it: like `echo`, without quotes."""
    return echo(str(path), limit)[1:-1]


def echo(value: object, limit: int = ECHO_MAX) -> str:
    """A value as an error line shows it: quoted, control characters escaped, cut to `limit`."""
    text = value if isinstance(value, str) else repr(value)
    text = "".join(
        c if unicodedata.category(c) not in _UNPRINTABLE else f"\\u{ord(c):04x}" for c in text
    )
    if len(text) > limit:
        text = f"{text[: limit - 1]}… ({len(value) if isinstance(value, str) else len(text)} chars)"
    return f"'{text}'"


# Cc: control characters (newline, ESC, NUL...), Cs: lone surrogates, Cf: invisible format
# characters such as bidirectional overrides.
_UNPRINTABLE = frozenset({"Cc", "Cs", "Cf"})


def _first_unprintable(text: str) -> int | None:
    for i, c in enumerate(text):
        if unicodedata.category(c) in _UNPRINTABLE:
            return i
    return None


def _walk_strings(value: object, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for k, v in value.items():
            key = echo(str(k), 40)[1:-1]  # a key is echoed too: escaped and cut
            yield from _walk_strings(v, f"{where}.{key}" if where else key)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _walk_strings(v, f"{where}[{i}]")


def check_strings(data: dict[str, Any]) -> None:
    """Refuse unprintable characters and credentials in URLs, in every string of `data`.

    Generic on purpose: a field added later is covered without a validator of its own.
    """
    for where, text in _walk_strings(data, ""):
        i = _first_unprintable(text)
        if i is not None:
            raise ConfigError(
                f"{where}: contains the unprintable character U+{ord(text[i]):04X} at position "
                f"{i + 1} (value {echo(text)})",
                "settings are single-line text; remove the character",
            )
        m = _URL_USERINFO_RE.match(text.strip())
        if m and (":" in m.group(2) or m.group(1).lower() in ("http", "https")):
            raise ConfigError(
                f"{where}: the URL carries credentials (user or token before '@'); they would be "
                "written into the plan, the record and the rendered manifests",
                "give the URL without them and put the credentials in the repository credential "
                "secret that the stack reads from Secret Manager; see docs/gitops.md, private repos",
            )


def _format_validation_error(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(x) for x in first["loc"])
    msg = str(first["msg"]).removeprefix("Value error, ")
    value = first.get("input")
    if first["type"] == "extra_forbidden":
        msg = "unknown key; check its spelling against the config reference in the README"
        loc = echo(loc, 40).strip("'")
    elif first["type"] == "missing":
        msg = f"is required: pass --{loc.replace('_', '-')} or set it in the config file"
    else:
        # pydantic's "Input should be a valid boolean" -> "must be a valid boolean (got 'x')"
        msg = msg.replace("Input should be", "must be")
        if isinstance(value, str) and len(value) > 3:
            # validators quote the value they refuse: show it cut short and escaped
            msg = msg.replace(f"'{value}'", echo(value)).replace(repr(value), echo(value))
        if not msg.startswith("'") and isinstance(value, str | int | float | bool):
            msg += f" (got {echo(value)})"
    # Model-level checks name their field themselves (their loc is empty).
    line = f"{loc}: {msg}" if loc else msg
    # Never echo credentials embedded in URLs (state, gitops_repo).
    line = re.sub(r"//[^/@\s]+@", "//[secret]@", line)
    # Whatever a validator echoed: one line of bounded length.
    line = "".join(c if unicodedata.category(c) not in _UNPRINTABLE else " " for c in line)
    return line if len(line) <= 400 else line[:399] + "…"


def _yaml_loader() -> type:
    """A SafeLoader for config files: plain scalars, lists and mappings only.

    Refuses duplicate keys (the last one would silently win), explicit tags such as !!binary
    or !!set, anchors/aliases, nesting deeper than `MAX_CONFIG_DEPTH` (the composer recurses)
    and integers too long to be a setting. Dates stay the text they were written as.
    """
    import yaml

    class Loader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise ConfigError(
                    f"anchors and aliases (*name) are not supported, at line {mark.line + 1}",
                    "write each value out",
                )
            self.depth += 1
            if self.depth > MAX_CONFIG_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise ConfigError(
                    f"nested more than {MAX_CONFIG_DEPTH} levels deep at line {mark.line + 1}",
                    "settings are at most a mapping of lists; see the config reference",
                )
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[object] = set()
            for key_node, _ in node.value:
                plain = isinstance(key_node, yaml.ScalarNode) and key_node.tag.endswith(":str")
                key = key_node.value if plain else None
                if key is None:
                    raise ConfigError(
                        f"a key at line {key_node.start_mark.line + 1} is not plain text",
                        "keys are setting names such as `project`",
                    )
                if key in seen:
                    raise ConfigError(
                        f"duplicate key {echo(key, 40)} at line {key_node.start_mark.line + 1}",
                        "set each key once; the earlier value would be silently lost",
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    allowed = {
        f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")
    }

    def refuse(loader: Any, node: Any) -> Any:
        raise ConfigError(
            f"the YAML tag {echo(node.tag, 60)} at line {node.start_mark.line + 1} is not "
            "supported",
            "settings are plain text, numbers, true/false, lists and mappings",
        )

    def plain_int(loader: Any, node: Any) -> Any:
        if len(str(node.value)) > 32:
            raise ConfigError(
                f"the number at line {node.start_mark.line + 1} has {len(node.value)} digits",
                "no setting takes a number that long",
            )
        return yaml.SafeLoader.construct_yaml_int(loader, node)

    def as_text(loader: Any, node: Any) -> Any:
        return loader.construct_scalar(node)

    for tag in list(Loader.yaml_constructors):
        if tag is None or (tag.startswith("tag:yaml.org,2002:") and tag not in allowed):
            Loader.add_constructor(tag, refuse)
    Loader.add_constructor("tag:yaml.org,2002:int", plain_int)
    Loader.add_constructor("tag:yaml.org,2002:timestamp", as_text)
    Loader.add_constructor(None, refuse)  # any other tag (!foo, !!python/...)
    return Loader


def read_config_bytes(path: Path) -> bytes:
    """Up to `MAX_CONFIG_BYTES` from a file, a pipe (`<(...)`), a device or `-` (stdin)."""
    from .files import read_input  # files imports config, never the reverse at import time

    where = "standard input" if str(path) == "-" else f"config file {echo_path(path)}"
    try:
        if str(path) != "-" and path.is_dir():
            raise ConfigError(f"{where} is a directory", "pass a YAML file to --config")
        data = read_input(path, MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{where} does not exist", "check the --config path") from None
    except OSError as e:
        raise ConfigError(
            f"{where} cannot be read: {e.__class__.__name__}",
            "pass a readable UTF-8 YAML file to --config",
        ) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{where} is larger than {MAX_CONFIG_BYTES // (1 << 20)} MiB",
            "a deployment config is a few lines of YAML; check the --config path",
        )
    return data


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a config file; any problem becomes a one-line `ConfigError`."""
    import yaml

    where = "standard input" if str(path) == "-" else f"config file {echo_path(path)}"
    raw = read_config_bytes(path)
    try:
        text = raw.decode("utf-8-sig")  # a BOM from Windows editors is dropped
    except UnicodeDecodeError:
        raise ConfigError(
            f"{where} cannot be read: it is not UTF-8 text",
            "pass a readable UTF-8 YAML file to --config",
        ) from None
    text = text.replace("\r\n", "\n")
    try:
        data = yaml.load(text, Loader=_yaml_loader())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None)
        raise ConfigError(
            f"{where} is not valid YAML{at}" + (f": {echo(problem, 80)[1:-1]}" if problem else ""),
            "fix the syntax there; each setting is a `key: value` line",
        ) from None
    except (ValueError, RecursionError, OverflowError) as e:
        raise ConfigError(
            f"{where} has a value that cannot be read ({e.__class__.__name__})",
            "settings are plain text, numbers, true/false, lists and mappings",
        ) from None
    if data is None:
        raise ConfigError(f"{where} is empty", "set at least project and region, see the README")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where} must be a mapping of keys to values",
            "write `key: value` lines such as `project: my-project`",
        )
    return data


def build_config(
    file: Path | None = None, overrides: dict[str, Any] | None = None
) -> DeploymentConfig:
    """Merge a YAML file with flag overrides (None means 'not given') and validate."""
    data: dict[str, Any] = load_yaml(file) if file is not None else {}
    for key, value in (overrides or {}).items():
        if value is None or value == ():
            continue
        if key == "versions" and isinstance(value, dict):
            data["versions"] = {**(data.get("versions") or {}), **value}
        else:
            data[key] = value
    check_strings(data)
    try:
        return DeploymentConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e)) from None
    except RecursionError:  # pragma: no cover - the loader caps nesting; flags are flat
        raise ConfigError("the config is nested too deeply") from None
