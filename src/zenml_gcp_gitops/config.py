"""The one typed config: every name, region and version of a deployment comes from here.

`DeploymentConfig` holds what the user chose; `Names` derives every resource name from it,
so a name is spelled once. Loading merges a YAML file with flags (flags win) and turns every
validation problem into a `ConfigError` that names the field and the fix.
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

from .errors import ConfigError

PULUMI_PROJECT = "zenml-gcp-gitops"
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


class DeploymentConfig(BaseModel):
    """What the user chose. Immutable; derived names live in `names`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str
    region: str
    name: str = "zenml"
    domain: str | None = None
    acme_email: str | None = None
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
    analytics: bool = False
    registry_keep_versions: int = Field(default=10, ge=1, le=1000)
    noncurrent_version_days: int = Field(default=30, ge=1, le=3650)

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
        if len(v) > 20 or not _DNS_LABEL_RE.match(v):
            raise ValueError(
                f"'{v}' must be a DNS label of at most 20 characters: lowercase letters, digits "
                "and hyphens, starting with a letter"
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

    @field_validator("acme_email")
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
        out: list[str] = []
        for cidr in v:
            try:
                net = ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"'{cidr}' is not a CIDR such as 203.0.113.0/24") from None
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

    @field_validator("gitops_repo")
    @classmethod
    def _gitops_repo(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^(https://|ssh://|git@)\S+$", v):
            raise ValueError(f"'{v}' is not a Git URL (https://…, ssh://… or git@…)")
        return v

    @field_validator("state")
    @classmethod
    def _state(cls, v: str | None) -> str | None:
        if v is None or v == "local":
            return v
        if not re.match(r"^(gs://[a-z0-9][a-z0-9._-]{1,61}[a-z0-9](/\S*)?|file://\S+)$", v):
            raise ValueError(f"'{v}' is not a state backend: use gs://BUCKET, file://DIR or local")
        return v

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
        for bucket in (names.artifact_bucket, names.mlflow_bucket, names.state_bucket):
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


class Names:
    """Every derived name of a deployment, computed in one place."""

    def __init__(self, cfg: DeploymentConfig) -> None:
        self.cfg = cfg
        n, p = cfg.name, cfg.project
        self.prefix = n
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
        self.databases = {"zenml": "zenml", "mlflow": "mlflow"}
        self.sql_users = {"zenml": "zenml", "mlflow": "mlflow"}
        self.artifact_bucket = f"{p}-{n}-artifacts"
        self.mlflow_bucket = f"{p}-{n}-mlflow"
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
            "zenml_admin": f"{sp}-zenml-admin",
            "zenml_jwt": f"{sp}-zenml-jwt",
            "mlflow_auth": f"{sp}-mlflow-auth",
            "mlflow_flask": f"{sp}-mlflow-flask-key",
            "ci_api_key": f"{sp}-ci-zenml-api-key",
        }
        if cfg.connector_auth == "service-account":
            self.secrets["pipelines_sa_key"] = f"{sp}-pipelines-key"
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
            "mlflow_auth": "mlflow-admin",
            "mlflow_flask": "mlflow-flask",
        }
        self.sql_ca_configmap = "cloudsql-server-ca"  # the Cloud SQL server CA (public data)
        self.pipelines_role = "zenml-pipelines"
        # ZenML objects
        self.zenml_stack = n
        self.zenml_local_stack = f"{n}-local"
        self.zenml_connector = f"{n}-gcp"
        self.zenml_components = {
            "artifact_store": f"{n}-artifacts",
            "container_registry": f"{n}-registry",
            "orchestrator": f"{n}-orchestrator",
            "experiment_tracker": f"{n}-mlflow",
            "image_builder": f"{n}-image-builder",
        }
        self.zenml_mlflow_secret = f"{n}-mlflow-credentials"
        self.zenml_ci_account = f"{n}-ci"
        self.zenml_ci_key = "ci"

    def workload_identity_member(self, ksa_key: str, namespace_key: str) -> str:
        """The IAM member a Kubernetes service account impersonates its Google account as."""
        return (
            f"serviceAccount:{self.cfg.project}.svc.id.goog"
            f"[{self.namespaces[namespace_key]}/{self.ksas[ksa_key]}]"
        )

    def sa_email(self, key: str) -> str:
        return f"{self.service_accounts[key]}@{self.cfg.project}.iam.gserviceaccount.com"

    @property
    def labels(self) -> dict[str, str]:
        """GCP resource labels (keys and values: lowercase, digits, - and _)."""
        return {"managed-by": "zenml-gcp-gitops", "deployment": self.prefix}

    @property
    def zenml_labels(self) -> dict[str, str]:
        return {
            "zenml:provider": "gcp",
            "zenml:deployment": LABEL_DEPLOYMENT,
            "zenml:name": self.prefix,
        }


class LocalNames:
    """Names of the local rehearsal (`--local`), derived from the deployment name alone.

    Locally there is no project or region, so no placeholder for them can leak into a name.
    The stack name equals `Names.zenml_local_stack` of any config with the same `name`.
    """

    def __init__(self, name: str = "zenml") -> None:
        if len(name) > 20 or not _DNS_LABEL_RE.match(name):
            raise ConfigError(
                f"name: '{name}' must be a DNS label of at most 20 characters",
                "use lowercase letters, digits and hyphens, starting with a letter",
            )
        n = name
        self.prefix = n
        self.zenml_stack = f"{n}-local"
        # Emulated buckets live on loopback only; real bucket names are global, these are not.
        self.artifact_bucket = f"{n}-local-artifacts"
        self.mlflow_bucket = f"{n}-local-mlflow"
        self.zenml_components = {
            "artifact_store": f"{n}-local-artifacts",
            "container_registry": f"{n}-local-registry",
            "orchestrator": f"{n}-local-orchestrator",
            "experiment_tracker": f"{n}-local-mlflow",
            "image_builder": f"{n}-local-image-builder",
        }
        self.zenml_mlflow_secret = f"{n}-local-mlflow-credentials"
        self.zenml_ci_account = f"{n}-ci"
        self.zenml_ci_key = "ci"
        self.ci_api_key_secret = f"{n}-ci-zenml-api-key"
        self.zenml_labels = {
            "zenml:provider": "local",
            "zenml:deployment": LABEL_DEPLOYMENT,
            "zenml:name": n,
        }


def user_data_dir() -> Path:
    """Where records, logs and local state live (XDG on Linux, overridable for tests)."""
    env = os.environ.get("ZENML_GCP_GITOPS_HOME")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "zenml-gcp-gitops"


def _format_validation_error(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(x) for x in first["loc"])
    msg = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key; check its spelling against the config reference in the README"
    elif first["type"] == "missing":
        msg = f"is required: pass --{loc.replace('_', '-')} or set it in the config file"
    else:
        # pydantic's "Input should be a valid boolean" -> "must be a valid boolean (got 'x')"
        msg = msg.replace("Input should be", "must be")
        value = first.get("input")
        if not msg.startswith("'") and isinstance(value, str | int | float | bool):
            msg += f" (got {value!r})"
    # Model-level checks name their field themselves (their loc is empty).
    line = f"{loc}: {msg}" if loc else msg
    # Never echo credentials embedded in URLs (state, gitops_repo).
    return re.sub(r"//[^/@\s]+@", "//[secret]@", line)


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a config file; any problem becomes a one-line `ConfigError`."""
    import yaml

    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist", "check the --config path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"config file {path} cannot be read: {e.__class__.__name__}",
            "pass a readable UTF-8 YAML file to --config",
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None)
        raise ConfigError(
            f"config file {path} is not valid YAML{where}" + (f": {problem}" if problem else ""),
            "fix the syntax there; each setting is a `key: value` line",
        ) from None
    if data is None:
        raise ConfigError(
            f"config file {path} is empty", "set at least project and region, see the README"
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must be a mapping of keys to values",
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
    try:
        return DeploymentConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e)) from None
