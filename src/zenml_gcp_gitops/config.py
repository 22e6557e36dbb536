"""The one typed config: what the user chose for a deployment, every field validated.

`DeploymentConfig` is the model; its `names` come from `names.py` (a name is spelled once) and
files are read by `config_file.py` (YAML with caps, string checks). `build_config` merges a
YAML file with flags (flags win) and turns every validation problem into a `ConfigError` that
names the field and the fix.
"""

from __future__ import annotations

import ipaddress
import os
import re
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .config_file import check_strings, format_validation_error, load_yaml
from .errors import ConfigError
from .names import _DNS_LABEL_RE, _NAME_MAX, _NAME_MIN, Names
from .sql_settings import SQL_DATABASE_FLAGS as SQL_DATABASE_FLAGS  # the instance's flags
from .sql_settings import log_retention_days

PAUSED_KEY = "paused"  # the Pulumi stack config input `pause` sets (docs/operations.md)
SECRET_MARK = "[secret]"  # what stands in every output for a secret value

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
GKE_MAX_AUTHORIZED_NETWORKS = 50  # GKE's limit of control-plane authorised networks


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


def user_data_dir() -> Path:
    """Where records, logs and local state live (XDG on Linux, overridable for tests)."""
    env = os.environ.get("ZENML_GCP_GITOPS_HOME")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "zenml-gcp-gitops"


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
        raise ConfigError(format_validation_error(e)) from None
    except RecursionError:  # pragma: no cover - the loader caps nesting; flags are flat
        raise ConfigError("the config is nested too deeply") from None
