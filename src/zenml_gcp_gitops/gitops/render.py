"""Render the GitOps tree from the `argocd/` templates, the config and the infra outputs.

One renderer serves every path: the plan contract (`argocd_plan`), the bootstrap (which
applies what it returns) and `render --out` (which writes it as a Git tree, see tree.py).
Each application's values and objects come from its module under `apps/`; this module
assembles them into one substitution context, the child Applications, the AppProject and
the root app. No secret value is ever an input: secrets appear only as Secret Manager IDs
and Kubernetes Secret names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..resources import argocd_dir
from .apps import ha, mlflow, mlflow_auth_secret, platform, workloads, zenml_server
from .template import render_template

if TYPE_CHECKING:
    from ..config import DeploymentConfig
    from ..outputs import InfraOutputs

MANAGED_BY = {"app.kubernetes.io/managed-by": "zenml-gcp-gitops"}


# The upstream install manifest per supported Argo CD version, with its sha256. Checked by
# hand against the tags of argoproj/argo-cd (`git show TAG:manifests/install.yaml | sha256sum`).
ARGOCD_INSTALL_URL = (
    "https://raw.githubusercontent.com/argoproj/argo-cd/{version}/manifests/install.yaml"
)

ARGOCD_INSTALL_SHA256: dict[str, str] = {
    "v3.4.7": "11016889371e4b1e3754b7ba2494b36ab1111338bd2362d499abe3ff2f63c906",
    "v3.5.0": "a32bf36a437071a1f563ebf9e81c8a39fba9057c17db7d5d041afb7b6e3f4afe",
    "v3.5.1": "795a3a972224da6a7f9d32c3e946445f062b60fb46028476715affeb688236e3",
}

# Without a GitOps repo the plain objects ride in the values of this raw-manifests chart,
# so Argo CD still owns, prunes and self-heals them.
RAW_CHART = {"repoURL": "https://bedag.github.io/helm-charts/", "chart": "raw", "version": "2.0.0"}

# Requests and limits of every pod the charts run (equal: Autopilot sets limits to requests
# anyway, and a pod without them gets Autopilot's default size). Controllers and hook Jobs
# get Autopilot's pod minimum; the servers what Autopilot's default gave them.
POD_RESOURCES: dict[str, dict[str, str]] = {
    "small": {"cpu": "250m", "memory": "512Mi"},
    "server": {"cpu": "500m", "memory": "2Gi"},
}


# A UID outside the host's range (Checkov CKV_K8S_40) where the image needs none of its own:
# the operators' static Go binaries, MLflow (read-only root, writes only to /tmp) and ZenML
# (read-only root, writes only to its config emptyDir).
HIGH_UID = 65532


RETRY = {"limit": 10, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"}}

# Cluster-scoped kinds the charts and objects create; nothing else is allowed.
CLUSTER_RESOURCES: list[dict[str, str]] = [
    {"group": "", "kind": "Namespace"},
    {"group": "apiextensions.k8s.io", "kind": "CustomResourceDefinition"},
    {"group": "rbac.authorization.k8s.io", "kind": "ClusterRole"},
    {"group": "rbac.authorization.k8s.io", "kind": "ClusterRoleBinding"},
    {"group": "admissionregistration.k8s.io", "kind": "ValidatingWebhookConfiguration"},
    {"group": "admissionregistration.k8s.io", "kind": "MutatingWebhookConfiguration"},
    {"group": "cert-manager.io", "kind": "ClusterIssuer"},
    {"group": "external-secrets.io", "kind": "ClusterSecretStore"},
]
NGINX_CLUSTER_RESOURCES = [{"group": "networking.k8s.io", "kind": "IngressClass"}]

# The manifests apps (the others are Helm charts) and the module that renders each one's objects.
MANIFEST_APPS: dict[
    str, Callable[[DeploymentConfig, InfraOutputs, dict[str, Any]], list[dict[str, Any]]]
] = {
    "platform": platform.objects,
    "workloads": workloads.objects,
}


def install_manifest(version: str) -> tuple[str, str]:
    """(URL, sha256) of the upstream install manifest for a supported Argo CD version."""
    if version not in ARGOCD_INSTALL_SHA256:
        supported = ", ".join(sorted(ARGOCD_INSTALL_SHA256))
        raise ConfigError(
            f"Argo CD {version} has no pinned install checksum",
            f"use one of {supported} (--argocd-version)",
        )
    return ARGOCD_INSTALL_URL.format(version=version), ARGOCD_INSTALL_SHA256[version]


# ---------------------------------------------------------------- the rendered tree


@dataclass
class ChildApp:
    key: str
    wave: int
    requires: list[str]
    manifest: dict[str, Any]
    objects: list[dict[str, Any]] = field(default_factory=list)  # manifests apps only

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])


@dataclass
class Rendered:
    argocd_version: str
    install_url: str
    install_sha256: str
    argocd_cm: dict[str, Any]
    project: dict[str, Any]
    root: dict[str, Any]
    apps: list[ChildApp]
    bootstrap: list[dict[str, Any]]  # repository declarations, applied with the project
    # private GitOps repo only: applied in order before the root app (see render())
    before_root: list[dict[str, Any]] = field(default_factory=list)

    @property
    def objects(self) -> list[dict[str, Any]]:
        extra = [o for o in self.before_root if o["kind"] == "ExternalSecret"]
        return [*self.bootstrap, *extra, *(o for app in self.apps for o in app.objects)]

    def all_manifests(self) -> list[dict[str, Any]]:
        return [
            self.argocd_cm,
            self.project,
            self.root,
            *(a.manifest for a in self.apps),
            *self.objects,
        ]

    def app(self, key: str) -> ChildApp:
        return next(a for a in self.apps if a.key == key)


def _context(cfg: DeploymentConfig, out: InfraOutputs) -> dict[str, Any]:
    """The substitution context: what every template shares, then each app's own values."""
    n = cfg.names
    issuer = platform.issuer(cfg)
    ctx: dict[str, Any] = {
        "name": n.prefix,
        "project": n.argocd_project,
        "root_app": n.argocd_root_app,
        "labels": {**MANAGED_BY, "zenml-gcp-gitops/deployment": n.prefix},
        "ns": dict(n.namespaces),
        "ksa": dict(n.ksas),
        "gsa": dict(out.service_accounts),
        "versions": cfg.versions.model_dump(),
        "gcp_project": out.project,
        "pipelines_role": n.pipelines_role,
        "helm_releases": dict(n.helm_releases),
        "sql_users": dict(n.sql_users),
        "databases": dict(n.databases),
        "sql_private_ip": out.sql_private_ip,
        "sql_server_ca_cert": out.sql_server_ca_cert,
        "sql_ca_configmap": n.sql_ca_configmap,
        "k8s_secret": dict(n.k8s_secrets),
        "retry": RETRY,
        "resources": {
            k: {"requests": dict(v), "limits": dict(v)} for k, v in POD_RESOURCES.items()
        },
        "high_uid": HIGH_UID,
        **platform.context(cfg, out),
        **zenml_server.context(cfg, out, issuer),
        **mlflow.context(cfg, out, issuer),
        **ha.context(cfg),
    }
    ctx["mlflow_db_objects"] = mlflow_auth_secret.database_objects(cfg, out, ctx)
    return ctx


def _component_table(cfg: DeploymentConfig, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    rows = render_template("apps/components.yaml", ctx)
    return [r for r in rows if r.get("when", cfg.ingress) == cfg.ingress]


def _repositories(
    cfg: DeploymentConfig, out: InfraOutputs, ctx: dict[str, Any]
) -> list[dict[str, Any]]:
    n = cfg.names
    repos = [
        {
            "name": n.argocd_repo_secrets["zenml_chart"],
            "data": {
                "name": "zenml",
                "type": "helm",
                "url": "public.ecr.aws/zenml",
                "enableOCI": "true",
            },
        }
    ]
    if cfg.gitops_repo and "gitops_repo" not in out.secret_ids:  # else ESO writes it
        repos.append(
            {
                "name": n.argocd_repo_secrets["gitops"],
                "data": {"name": "gitops", "type": "git", "url": cfg.gitops_repo},
            }
        )
    return [render_template("objects/repository.yaml", {**ctx, "obj": r}) for r in repos]


def _gitops_repo_credentials(
    cfg: DeploymentConfig, out: InfraOutputs, ctx: dict[str, Any]
) -> list[dict[str, Any]]:
    """A private GitOps repo: ESO fills the repository Secret's credentials (never Git)."""
    n = cfg.names
    if not cfg.gitops_repo or "gitops_repo" not in out.secret_ids:
        return []
    data = [
        {
            "secretKey": k,
            "remoteRef": {"key": out.secret_ids["gitops_repo"], "version": "latest", "property": k},
        }
        for k in ("username", "password")
    ]
    template = {
        "mergePolicy": "Merge",
        "metadata": {"labels": {"argocd.argoproj.io/secret-type": "repository"}},
        "data": {"name": "gitops", "type": "git", "url": cfg.gitops_repo},
    }
    obj = {
        "name": n.argocd_repo_secrets["gitops"],
        "namespace": n.namespaces["argocd"],
        "data": data,
        "template": template,
    }
    return [render_template("objects/external-secret.yaml", {**ctx, "obj": obj})]


def _folder(key: str) -> str:
    """The repo folder of a manifests app (under gitops_path)."""
    return key.replace("_", "-")


def _manifests_source(
    cfg: DeploymentConfig, app_name: str, key: str, objects: list[dict[str, Any]]
) -> dict[str, Any]:
    if cfg.gitops_repo:
        return {
            "repoURL": cfg.gitops_repo,
            "targetRevision": cfg.gitops_revision,
            "path": f"{cfg.gitops_path.strip('/')}/{_folder(key)}",
        }
    return {
        "repoURL": RAW_CHART["repoURL"],
        "chart": RAW_CHART["chart"],
        "targetRevision": RAW_CHART["version"],
        "helm": {"releaseName": app_name, "valuesObject": {"resources": objects}},
    }


def render(
    cfg: DeploymentConfig,
    outputs: InfraOutputs,
    paused: bool = False,
    keep: set[str] | None = None,
) -> Rendered:
    """Everything Argo CD gets, as plain dicts; `paused`: every chart's pods at zero; `keep`:
    only these apps (by key) in the app-of-apps (`gitops/database_free.py`)."""
    n = cfg.names
    url, sha = install_manifest(cfg.versions.argocd)
    ctx = _context(cfg, outputs)
    health_lua = (argocd_dir() / "install" / "application-health.lua").read_text()
    argocd_cm = render_template("install/argocd-cm.yaml", {**ctx, "health_lua": health_lua})

    apps: list[ChildApp] = []
    repo_urls: list[str] = []
    for row in _component_table(cfg, ctx):
        key = row["key"]
        if keep is not None and key not in keep:
            continue
        name = n.argocd_apps[key]
        if row["kind"] == "helm":
            values = render_template(row["values"], ctx)
            if paused:
                from .paused import paused_values

                values = paused_values(key, values)
            sync_options = [*row["sync_options"], "RespectIgnoreDifferences=true"]
            app_ctx = {
                **ctx,
                "app": {
                    "name": name,
                    "wave": str(row["wave"]),
                    "repo_url": row["repo_url"],
                    "chart": row["chart"],
                    "version": str(row["version"]),
                    "release": n.helm_releases[key],
                    "namespace": row["namespace"],
                    "values": values,
                    "sync_options": sync_options,
                },
            }
            manifest = render_template("apps/helm-app.yaml", app_ctx)
            manifest["spec"]["ignoreDifferences"] += row.get("ignore_differences", [])
            apps.append(ChildApp(key, int(row["wave"]), list(row["requires"]), manifest))
            repo_urls.append(row["repo_url"])
        else:
            objects = MANIFEST_APPS[key](cfg, outputs, ctx)
            app_ctx = {
                **ctx,
                "app": {
                    "name": name,
                    "wave": str(row["wave"]),
                    "namespace": row["namespace"],
                    "sync_options": row["sync_options"],
                    "source": _manifests_source(cfg, name, key, objects),
                },
            }
            manifest = render_template("apps/manifests-app.yaml", app_ctx)
            apps.append(ChildApp(key, int(row["wave"]), list(row["requires"]), manifest, objects))

    if cfg.gitops_repo:
        repo_urls.append(cfg.gitops_repo)
        root_source: dict[str, Any] = {
            "repoURL": cfg.gitops_repo,
            "targetRevision": cfg.gitops_revision,
            "path": f"{cfg.gitops_path.strip('/')}/apps",
        }
    else:
        repo_urls.append(RAW_CHART["repoURL"])
        root_source = {
            "repoURL": RAW_CHART["repoURL"],
            "chart": RAW_CHART["chart"],
            "targetRevision": RAW_CHART["version"],
            "helm": {
                "releaseName": n.argocd_root_app,
                "valuesObject": {"resources": [a.manifest for a in apps]},
            },
        }

    namespaces = [
        n.namespaces[k]
        for k in ("argocd", "external_secrets", "cert_manager", "zenml", "mlflow", "pipelines")
    ]
    namespaces.insert(3, n.namespaces["gateway" if cfg.ingress == "gateway" else "ingress"])
    destinations = [
        {"server": "https://kubernetes.default.svc", "namespace": ns} for ns in namespaces
    ]
    cluster_resources = CLUSTER_RESOURCES + (
        NGINX_CLUSTER_RESOURCES if cfg.ingress == "nginx" else []
    )
    project = render_template(
        "project.yaml",
        {
            **ctx,
            "source_repos": sorted(dict.fromkeys(repo_urls)),
            "destinations": destinations,
            "cluster_resources": cluster_resources,
        },
    )
    root = render_template("root.yaml", {**ctx, "root_source": root_source})
    # A private GitOps repo cannot carry the credentials that unlock it: the bootstrap applies
    # External Secrets (a public chart), the store and the repository ExternalSecret itself,
    # before the root app; Argo CD then adopts the first two from the repo.
    before_root: list[dict[str, Any]] = []
    credentials = _gitops_repo_credentials(cfg, outputs, ctx)
    if credentials:
        store = next(o for a in apps for o in a.objects if o["kind"] == "ClusterSecretStore")
        before_root = [
            next(a for a in apps if a.key == "external_secrets").manifest,
            store,
            *credentials,
        ]
    return Rendered(
        argocd_version=cfg.versions.argocd,
        install_url=url,
        install_sha256=sha,
        argocd_cm=argocd_cm,
        project=project,
        root=root,
        apps=apps,
        bootstrap=_repositories(cfg, outputs, ctx),
        before_root=before_root,
    )


def argocd_plan(
    cfg: DeploymentConfig, outputs: InfraOutputs, rendered: Rendered | None = None
) -> dict[str, Any]:
    """The `argocd` section of the plan contract (`rendered`: the tree, if already made)."""
    r = rendered if rendered is not None else render(cfg, outputs)
    return {
        "version": r.argocd_version,
        "install": {
            "manifest_url": r.install_url,
            "sha256": r.install_sha256,
            "argocd_cm": r.argocd_cm,
        },
        "project": r.project,
        "root": r.root,
        "applications": [a.manifest for a in r.apps],
        "objects": r.objects,
    }
