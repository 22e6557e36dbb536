"""Every name of a deployment, derived in one place from its config (`Names`) or, for the
local rehearsal, from its name alone (`LocalNames`): a name is spelled once."""

from __future__ import annotations

import re
from typing import Protocol

from .errors import ConfigError, echo

PULUMI_PROJECT = "zenml-gcp-gitops"
LABEL_DEPLOYMENT = (
    "gcp-gitops"  # the value of the `zenml:deployment` label on everything we register
)

_NAME_MIN, _NAME_MAX = 3, 20
_DNS_LABEL_RE = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")


class NameSource(Protocol):
    """What names derive from: the fields of `DeploymentConfig` they read (the model itself
    sits above this module and passes itself in)."""

    name: str
    project: str
    region: str
    domain: str | None
    dns_zone: str | None
    create_dns_zone: bool
    github_repo: str | None
    gitops_repo: str | None
    gitops_repo_private: bool

    @property  # a Literal in the model: read-only here, so any narrower str will do
    def connector_auth(self) -> str: ...

    @property
    def image_builder(self) -> str: ...


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

    def __init__(self, cfg: NameSource) -> None:
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
