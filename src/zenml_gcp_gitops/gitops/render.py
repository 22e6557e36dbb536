"""Render the GitOps tree from the `argocd/` templates, the config and the infra outputs.

One renderer serves every path: the plan contract (`argocd_plan`), the bootstrap (which
applies what it returns) and `render --out` (which writes it as a Git tree). Templates are
parsed as YAML *before* substitution, so a value can never add or change structure (see
`argocd/README.md`). No secret value is ever an input: secrets appear only as Secret
Manager IDs and Kubernetes Secret names.

It is one module (not split per app) because the apps share one substitution context and
one ownership manifest; splitting them would spread a single rendering pass over files.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .. import mlflow_auth
from ..errors import ConfigError
from ..resources import argocd_dir
from .tree_files import TREE_MANIFEST as TREE_MANIFEST
from .tree_files import TreeWrite, write_files

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

LETSENCRYPT = {
    "staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
    "prod": "https://acme-v02.api.letsencrypt.org/directory",
}

MLFLOW_IMAGE = "burakince/mlflow"
MLFLOW_MIGRATE_JOB = "mlflow-migrate"  # the PreSync Job that migrates MLflow's schemas  # the chart's image; its tag is versions.mlflow

# Where MLflow's pod mounts the Cloud SQL server CA (argocd/values/mlflow.yaml)
SQL_CA_DIR = "/etc/cloudsql"
SQL_CA_FILE = "server-ca.pem"

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
# ZENML_CONFIG_PATH in the ZenML server image, where its chart mounts an emptyDir
ZENML_CONFIG_DIR = "/zenml/.zenconfig"
# The service accounts of pods that never call the Kubernetes API: no token is mounted.
API_FREE_KSAS = ("zenml_server", "mlflow")

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

# Where Google's load balancers connect to backends from: the Gateway's Envoy proxies sit in
# the proxy-only subnet; health checks come from Google's documented prober ranges.
LB_HEALTH_CHECK_RANGES = ("35.191.0.0/16", "130.211.0.0/22")
PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
# The servers' pods as the charts label them (selector labels: chart name + release) and
# the port their container serves on.
SERVER_PODS = {"zenml": ("zenml", "zenml_server", 8080), "mlflow": ("mlflow", "mlflow", 5000)}
ACME_SOLVER_PORT = 8089  # cert-manager's HTTP-01 solver pods (ingress-nginx only)

_PLACEHOLDER = re.compile(r"\$\{([a-z_][a-z0-9_.]*)\}")
_DROP = object()  # a whole-value placeholder that resolved to None: the key is left out


def install_manifest(version: str) -> tuple[str, str]:
    """(URL, sha256) of the upstream install manifest for a supported Argo CD version."""
    if version not in ARGOCD_INSTALL_SHA256:
        supported = ", ".join(sorted(ARGOCD_INSTALL_SHA256))
        raise ConfigError(
            f"Argo CD {version} has no pinned install checksum",
            f"use one of {supported} (--argocd-version)",
        )
    return ARGOCD_INSTALL_URL.format(version=version), ARGOCD_INSTALL_SHA256[version]


# ---------------------------------------------------------------- template engine


# libyaml's parser when PyYAML has it: the templates parse several times faster
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@cache
def _load(rel: str) -> Any:
    path = argocd_dir() / rel
    return yaml.load(path.read_text(), Loader=_YAML_LOADER)


def _lookup(key: str, values: dict[str, Any]) -> Any:
    cur: Any = values
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise KeyError(key)
        cur = cur[part]
    return cur


def _copy(value: Any) -> Any:
    """A private copy of a value put into a template (the JSON-like values are copied by
    hand: `copy.deepcopy` of them was a large part of rendering)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return copy.deepcopy(value)


def substitute(node: Any, values: dict[str, Any], where: str = "template") -> Any:
    """Replace `${key}` in the string leaves of an already-parsed template."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            new = substitute(v, values, where)
            if new is not _DROP:
                out[k] = new
        return out
    if isinstance(node, list):
        return [x for x in (substitute(v, values, where) for v in node) if x is not _DROP]
    if not isinstance(node, str):
        return node
    whole = _PLACEHOLDER.fullmatch(node)
    try:
        if whole:
            value = _lookup(whole.group(1), values)
            return _DROP if value is None else _copy(value)

        def text(m: re.Match[str]) -> str:
            value = _lookup(m.group(1), values)
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise TypeError(m.group(1))
            return str(value)

        return _PLACEHOLDER.sub(text, node)
    except KeyError as e:
        raise ConfigError(f"{where}: unknown placeholder ${{{e.args[0]}}}") from None
    except TypeError as e:
        raise ConfigError(
            f"{where}: ${{{e.args[0]}}} is not text and cannot sit inside a string"
        ) from None


def render_template(rel: str, values: dict[str, Any]) -> Any:
    return substitute(_load(rel), values, where=f"argocd/{rel}")


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


HA_REPLICAS = 2
ZONE_KEY = "topology.kubernetes.io/zone"


def server_selectors(cfg: DeploymentConfig) -> dict[str, dict[str, str]]:
    """The pod labels the two server charts put on their server pods (not on Job pods)."""
    n = cfg.names
    return {
        "zenml": {
            "app.kubernetes.io/name": "zenml",
            "app.kubernetes.io/instance": n.helm_releases["zenml_server"],
            "app.kubernetes.io/component": "server",
        },
        "mlflow": {
            "app.kubernetes.io/name": "mlflow",
            "app.kubernetes.io/instance": n.helm_releases["mlflow"],
        },
    }


def mlflow_can_scale(cfg: DeploymentConfig) -> bool:
    """MLflow's basic-auth users must live in Cloud SQL before it runs more than one pod
    (each pod would otherwise keep its own SQLite user table)."""
    return "mlflow_auth" in cfg.names.databases


def ha_shape(cfg: DeploymentConfig) -> dict[str, int]:
    """Server replicas: two each with `ha` (MLflow once its users are in Cloud SQL)."""
    if not cfg.ha:
        return {"zenml": 1, "mlflow": 1}
    return {"zenml": HA_REPLICAS, "mlflow": HA_REPLICAS if mlflow_can_scale(cfg) else 1}


def _spread(selector: dict[str, str]) -> dict[str, Any]:
    """Prefer one pod per zone (the charts take `affinity`, not topologySpreadConstraints);
    preferred, so a zone outage never blocks scheduling."""
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": ZONE_KEY,
                        "labelSelector": {"matchLabels": dict(selector)},
                    },
                }
            ]
        }
    }


def _context(cfg: DeploymentConfig, out: InfraOutputs) -> dict[str, Any]:
    n = cfg.names
    gateway = cfg.ingress == "gateway"
    labels = {**MANAGED_BY, "zenml-gcp-gitops/deployment": n.prefix}
    issuer = n.cluster_issuers["prod"]
    if gateway:
        solver: dict[str, Any] = {
            "gatewayHTTPRoute": {
                "parentRefs": [
                    {"name": n.gateway, "namespace": n.namespaces["gateway"], "sectionName": "http"}
                ]
            }
        }
    else:
        solver = {"ingress": {"ingressClassName": n.ingress_class}}

    acme_solvers: list[dict[str, Any]] = [{"http01": solver}]
    cert_manager_sa: dict[str, Any] | None = None
    if cfg.acme_challenge == "dns01" and n.dns_zone:
        # hostedZoneName spares cert-manager listing zones: dns.admin on this zone suffices
        cloud_dns = {"project": n.dns_zone_project, "hostedZoneName": n.dns_zone}
        acme_solvers = [{"dns01": {"cloudDNS": cloud_dns}}]
        cert_manager_sa = {"annotations": {"iam.gke.io/gcp-service-account": n.dns01_email}}

    zenml_ingress: dict[str, Any] = {"enabled": False}
    mlflow_ingress: dict[str, Any] = {"enabled": False}
    if not gateway:
        annotations = {"cert-manager.io/cluster-issuer": issuer}
        zenml_ingress = {
            "enabled": True,
            "className": n.ingress_class,
            "annotations": annotations,
            "host": out.zenml_host,
            "path": "/",
            "tls": {"enabled": True, "secretName": n.tls_secrets["zenml"]},
        }
        mlflow_ingress = {
            "enabled": True,
            "className": n.ingress_class,
            "annotations": annotations,
            "hosts": [{"host": out.mlflow_host, "paths": [{"path": "/", "pathType": "Prefix"}]}],
            "tls": [{"secretName": n.tls_secrets["mlflow"], "hosts": [out.mlflow_host]}],
        }
    return {
        "name": n.prefix,
        "project": n.argocd_project,
        "root_app": n.argocd_root_app,
        "labels": labels,
        "ns": dict(n.namespaces),
        "ksa": dict(n.ksas),
        "gsa": dict(out.service_accounts),
        "versions": cfg.versions.model_dump(),
        "gcp_project": out.project,
        "store": n.cluster_secret_store,
        "acme_email": cfg.acme_email,
        "http01_solver": solver,
        "acme_solvers": acme_solvers,
        "cert_manager_service_account": cert_manager_sa,
        "gateway": n.gateway,
        "gateway_class": n.gateway_class,
        "gateway_enabled": gateway,
        "ingress_class": n.ingress_class,
        "ingress_ip_name": n.ingress_ip,
        "ingress_ip": out.ingress_ip,
        "zenml_host": out.zenml_host,
        "mlflow_host": out.mlflow_host,
        "zenml_url": out.zenml_url,
        "tls": dict(n.tls_secrets),
        "issuer": issuer,
        "pipelines_role": n.pipelines_role,
        "helm_releases": dict(n.helm_releases),
        "sql_users": dict(n.sql_users),
        "databases": dict(n.databases),
        "sql_private_ip": out.sql_private_ip,
        "sql_server_ca_cert": out.sql_server_ca_cert,
        "sql_ca_configmap": n.sql_ca_configmap,
        "k8s_secret": dict(n.k8s_secrets),
        "analytics": cfg.analytics,
        "zenml_ingress": zenml_ingress,
        "mlflow_ingress": mlflow_ingress,
        "mlflow_bucket": out.mlflow_bucket,
        "mlflow_image": {"repository": MLFLOW_IMAGE, "tag": cfg.versions.mlflow},
        "mlflow_migrate": {
            "name": MLFLOW_MIGRATE_JOB,
            "labels": _migrate_pods(cfg),
            "store_uri": (
                f"mysql+pymysql://$(MYSQL_USERNAME):$(MYSQL_PWD)@{out.sql_private_ip}:3306/"
                f"{n.databases['mlflow']}?ssl_ca={SQL_CA_DIR}/{SQL_CA_FILE}"
                "&ssl_check_hostname=false"
            ),
        },
        "mlflow_auth": {
            "migrate": mlflow_auth.MIGRATE,
            "secret": n.mlflow_auth_config_secret,
            "dir": mlflow_auth.MOUNT_DIR,
            "path": mlflow_auth.CONFIG_PATH,
            "file": mlflow_auth.CONFIG_FILE,
        },
        "sql_ca": {"dir": SQL_CA_DIR, "file": SQL_CA_FILE},
        "retry": RETRY,
        "resources": {
            k: {"requests": dict(v), "limits": dict(v)} for k, v in POD_RESOURCES.items()
        },
        "high_uid": HIGH_UID,
        "zenml_config_dir": ZENML_CONFIG_DIR,
        "replicas": ha_shape(cfg),
        "affinity": {
            k: (_spread(sel) if ha_shape(cfg)[k] > 1 else None)
            for k, sel in server_selectors(cfg).items()
        },
    }


def _component_table(cfg: DeploymentConfig, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    rows = render_template("apps/components.yaml", ctx)
    return [r for r in rows if r.get("when", cfg.ingress) == cfg.ingress]


def _external_secrets(out: InfraOutputs, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    table = render_template("objects/secrets.yaml", ctx)
    objs = []
    for key, spec in table.items():
        secret_id = out.secret_ids.get(key)
        if secret_id is None:
            raise ConfigError(
                f"infra outputs have no Secret Manager ID for '{key}'",
                "re-run the infra phase; secret_ids must list every secret the cluster reads",
            )
        data = []
        for k in spec["keys"]:
            ref = {"key": secret_id, "version": "latest"}
            if "property" in k:
                ref["property"] = k["property"]
            data.append({"secretKey": k["secretKey"], "remoteRef": ref})
        template = None
        if spec.get("literal"):
            # fixed, non-secret keys (a user name) merged next to the fetched ones
            template = {"mergePolicy": "Merge", "data": dict(spec["literal"])}
        obj_ctx = {
            **ctx,
            "obj": {
                "name": ctx["k8s_secret"][key],
                "namespace": spec["namespace"],
                "data": data,
                "template": template,
            },
        }
        objs.append(render_template("objects/external-secret.yaml", obj_ctx))
    return objs


def _mlflow_auth_config(
    cfg: DeploymentConfig, out: InfraOutputs, ctx: dict[str, Any]
) -> dict[str, Any]:
    """MLflow's basic_auth.ini as a Secret: users and permissions in their own Cloud SQL
    database over TLS (not in a file in the pod, which is lost on restart and not shared by
    replicas), with the admin account from Secret Manager."""
    n = cfg.names
    ids = {}
    for key in ("mlflow_auth_db_password", "mlflow_auth"):
        if key not in out.secret_ids:
            raise ConfigError(
                f"infra outputs have no Secret Manager ID for '{key}'",
                "re-run the infra phase; secret_ids must list every secret the cluster reads",
            )
        ids[key] = out.secret_ids[key]
    f = mlflow_auth.TEMPLATE_FIELDS
    ini = mlflow_auth.auth_ini(
        database_uri=mlflow_auth.mysql_uri(
            n.sql_users["mlflow_auth"],
            f["db_password"],
            out.sql_private_ip,
            3306,
            n.databases["mlflow_auth"],
            ca_file=f"{SQL_CA_DIR}/{SQL_CA_FILE}",
        ),
        admin_username=f["admin_username"],
        admin_password=f["admin_password"],
    )
    latest = {"version": "latest"}
    data = [
        {
            "secretKey": "db_password",
            "remoteRef": {"key": ids["mlflow_auth_db_password"], **latest},
        },
        *(
            {
                "secretKey": f"admin_{k}",
                "remoteRef": {"key": ids["mlflow_auth"], **latest, "property": k},
            }
            for k in ("username", "password")
        ),
    ]
    obj = {
        "name": n.mlflow_auth_config_secret,
        "namespace": n.namespaces["mlflow"],
        "data": data,
        # only the rendered file lands in the Secret, not the parts it is made of
        "template": {"engineVersion": "v2", "data": {mlflow_auth.CONFIG_FILE: ini}},
    }
    es: dict[str, Any] = render_template("objects/external-secret.yaml", {**ctx, "obj": obj})
    return es


def _platform_objects(
    cfg: DeploymentConfig, out: InfraOutputs, ctx: dict[str, Any]
) -> list[dict[str, Any]]:
    n = cfg.names
    store_ns = [n.namespaces["zenml"], n.namespaces["mlflow"]]
    if cfg.gitops_repo and "gitops_repo" in out.secret_ids:
        store_ns.append(n.namespaces["argocd"])
    objs = [
        render_template(
            "objects/cluster-secret-store.yaml",
            {**ctx, "store_namespaces": store_ns},
        )
    ]
    for env in ("staging", "prod"):
        obj = {"name": n.cluster_issuers[env], "server": LETSENCRYPT[env]}
        objs.append(render_template("objects/cluster-issuer.yaml", {**ctx, "obj": obj}))
    if cfg.ingress == "gateway":
        objs.append(
            render_template(
                "objects/namespace.yaml", {**ctx, "obj": {"name": n.namespaces["gateway"]}}
            )
        )
        objs.append(render_template("objects/gateway.yaml", ctx))
        objs.append(render_template("objects/https-redirect.yaml", ctx))
        for svc, host in (("zenml", out.zenml_host), ("mlflow", out.mlflow_host)):
            obj = {"name": f"{svc}-tls", "secret": n.tls_secrets[svc], "host": host}
            objs.append(render_template("objects/certificate.yaml", {**ctx, "obj": obj}))
    return objs


def _pipeline_launchers(cfg: DeploymentConfig, out: InfraOutputs) -> list[dict[str, str]]:
    """Who may start pipeline pods: the orchestrator pod's KSA, the Google identity the ZenML
    connector hands to clients (GKE names IAM users by email), and CI's account if any."""
    n = cfg.names
    connector = "pipelines" if cfg.connector_auth == "service-account" else "zenml_server"
    subjects = [
        {
            "kind": "ServiceAccount",
            "name": n.ksas["pipelines"],
            "namespace": n.namespaces["pipelines"],
        }
    ]
    for key in (connector, "ci"):
        if key in out.service_accounts:
            subjects.append(
                {
                    "kind": "User",
                    "name": out.service_accounts[key],
                    "apiGroup": "rbac.authorization.k8s.io",
                }
            )
    return subjects


def _workload_objects(
    cfg: DeploymentConfig, out: InfraOutputs, ctx: dict[str, Any]
) -> list[dict[str, Any]]:
    n = cfg.names
    objs = [
        render_template("objects/namespace.yaml", {**ctx, "obj": {"name": n.namespaces[k]}})
        for k in ("zenml", "mlflow", "pipelines")
    ]
    for ksa, ns in (("zenml_server", "zenml"), ("mlflow", "mlflow"), ("pipelines", "pipelines")):
        sa = {
            "name": n.ksas[ksa],
            "namespace": n.namespaces[ns],
            "gsa": out.service_accounts[ksa],
            "automount": False if ksa in API_FREE_KSAS else None,
        }
        objs.append(render_template("objects/service-account.yaml", {**ctx, "obj": sa}))
    objs.append(render_template("objects/sql-ca-configmap.yaml", ctx))
    objs += _external_secrets(out, ctx)
    objs.append(_mlflow_auth_config(cfg, out, ctx))
    objs.append(render_template("objects/pipelines-role.yaml", ctx))
    objs.append(
        render_template(
            "objects/pipelines-rolebinding.yaml",
            {**ctx, "subjects": _pipeline_launchers(cfg, out)},
        )
    )
    if cfg.ingress == "gateway":
        for svc, release, host in (
            ("zenml", n.helm_releases["zenml_server"], out.zenml_host),
            ("mlflow", n.helm_releases["mlflow"], out.mlflow_host),
        ):
            obj = {
                "name": svc,
                "namespace": n.namespaces[svc],
                "listener": f"https-{svc}",
                "host": host,
                "service": release,  # both charts name their Service after the release
                "port": 80,
            }
            objs.append(render_template("objects/httproute.yaml", {**ctx, "obj": obj}))
            objs.append(render_template("objects/healthcheck-policy.yaml", {**ctx, "obj": obj}))
    for svc, selector in server_selectors(cfg).items():
        if ctx["replicas"][svc] > 1:
            obj = {"name": f"{svc}-server", "namespace": n.namespaces[svc], "selector": selector}
            objs.append(render_template("objects/pdb.yaml", {**ctx, "obj": obj}))
    objs += _network_policies(cfg, out, ctx)
    return objs


def _migrate_pods(cfg: DeploymentConfig) -> dict[str, str]:
    """The MLflow migration Job's pods: not the servers' labels, so no Service sends to them."""
    return {
        "app.kubernetes.io/name": MLFLOW_MIGRATE_JOB,
        "app.kubernetes.io/instance": cfg.names.helm_releases["mlflow"],
    }


def _server_pods(cfg: DeploymentConfig, svc: str) -> dict[str, str]:
    chart, release, _ = SERVER_PODS[svc]
    return {
        "app.kubernetes.io/name": chart,
        "app.kubernetes.io/instance": cfg.names.helm_releases[release],
    }


def _network_policies(
    cfg: DeploymentConfig, out: InfraOutputs, ctx: dict[str, Any]
) -> list[dict[str, Any]]:
    """Deny ingress by default in the stack's namespaces; let in only the ingress layer and
    pipeline pods, to the servers' serving ports; limit what the servers connect to."""
    from ..config import PROXY_CIDR, PSA_PREFIX_LENGTH

    n = cfg.names
    if cfg.ingress == "gateway":
        source = "gateway"
        peers: list[dict[str, Any]] = [
            {"ipBlock": {"cidr": cidr}} for cidr in (PROXY_CIDR, *LB_HEALTH_CHECK_RANGES)
        ]
    else:
        source = "ingress-nginx"
        peers = [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": n.namespaces["ingress"]}
                },
                "podSelector": {
                    "matchLabels": {
                        "app.kubernetes.io/name": "ingress-nginx",
                        "app.kubernetes.io/instance": n.helm_releases["ingress_nginx"],
                        "app.kubernetes.io/component": "controller",
                    }
                },
            }
        ]
    # The private services range is the /PSA_PREFIX_LENGTH block that holds the instance.
    sql_range = str(ipaddress.ip_network(f"{out.sql_private_ip}/{PSA_PREFIX_LENGTH}", strict=False))
    net_ctx = {**ctx, "sql_range": sql_range, "private_ranges": PRIVATE_RANGES}
    objs = [
        render_template(
            "objects/networkpolicy-default-deny.yaml",
            {**ctx, "obj": {"namespace": n.namespaces[k]}},
        )
        for k in ("zenml", "mlflow", "pipelines")
    ]
    for svc in ("zenml", "mlflow"):
        obj = {
            "namespace": n.namespaces[svc],
            "pods": _server_pods(cfg, svc),
            "port": SERVER_PODS[svc][2],
            "peers": peers,
        }
        objs.append(
            render_template(
                "objects/networkpolicy-from-ingress.yaml",
                {**ctx, "obj": {**obj, "name": f"{svc}-from-{source}"}},
            )
        )
        if cfg.ingress == "nginx":  # cert-manager answers HTTP-01 from pods next to the Ingress
            solver = {
                **obj,
                "name": f"acme-solver-from-{source}",
                "pods": {"acme.cert-manager.io/http01-solver": "true"},
                "port": ACME_SOLVER_PORT,
            }
            objs.append(
                render_template("objects/networkpolicy-from-ingress.yaml", {**ctx, "obj": solver})
            )
        objs.append(
            render_template(
                "objects/networkpolicy-from-pipelines.yaml",
                {**ctx, "obj": {**obj, "name": f"{svc}-from-pipelines"}},
            )
        )
        objs.append(
            render_template(
                "objects/networkpolicy-server-egress.yaml",
                {**net_ctx, "obj": {**obj, "name": f"{svc}-egress"}},
            )
        )
    # the MLflow migration Job reaches the database like the server, and nothing more
    job = {"namespace": n.namespaces["mlflow"], "pods": _migrate_pods(cfg)}
    objs.append(
        render_template(
            "objects/networkpolicy-server-egress.yaml",
            {**net_ctx, "obj": {**job, "name": f"{MLFLOW_MIGRATE_JOB}-egress"}},
        )
    )
    return objs


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


def render(cfg: DeploymentConfig, outputs: InfraOutputs, paused: bool = False) -> Rendered:
    """Everything Argo CD gets, as plain dicts; `paused`: every chart's pods at zero."""
    n = cfg.names
    url, sha = install_manifest(cfg.versions.argocd)
    ctx = _context(cfg, outputs)
    health_lua = (argocd_dir() / "install" / "application-health.lua").read_text()
    argocd_cm = render_template("install/argocd-cm.yaml", {**ctx, "health_lua": health_lua})

    apps: list[ChildApp] = []
    repo_urls: list[str] = []
    for row in _component_table(cfg, ctx):
        key = row["key"]
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
            if key == "platform":
                objects = _platform_objects(cfg, outputs, ctx)
            else:
                objects = _workload_objects(cfg, outputs, ctx)
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


# ---------------------------------------------------------------- render --out


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the health check, CA certificates) as readable `|` blocks."""


def _str_block(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_block)


def dump_yaml(obj: Any) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)


_dump = dump_yaml


def _file_name(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    ns = meta.get("namespace")
    base = f"{obj['kind'].lower()}-{meta['name']}"
    return f"{base}.{ns}.yaml" if ns else f"{base}.yaml"


def tree(r: Rendered) -> dict[str, str]:
    """Relative path -> file text of the GitOps tree (argocd-autopilot-like layout)."""
    files: dict[str, str] = {}
    files["bootstrap/argocd-cm.yaml"] = _dump(r.argocd_cm)
    files["bootstrap/project.yaml"] = _dump(r.project)
    files["bootstrap/root.yaml"] = _dump(r.root)
    for obj in r.bootstrap + [o for o in r.before_root if o["kind"] == "ExternalSecret"]:
        files[f"bootstrap/{_file_name(obj)}"] = _dump(obj)
    for app in r.apps:
        files[f"apps/{app.name}.yaml"] = _dump(app.manifest)
        for obj in app.objects:
            files[f"{_folder(app.key)}/{_file_name(obj)}"] = _dump(obj)
    return files


_TREE_README = """# GitOps tree (generated by `zenml-gcp-gitops render`)

- `bootstrap/`: applied once by `zenml-gcp-gitops deploy` (argocd-cm settings, the AppProject,
  the root Application, repository declarations).
- `apps/`: the child Applications the root app tracks, one per component, with sync waves.
- `platform/`, `workloads/`: the plain objects of the two manifests apps.

Commit this folder at `--gitops-path` of `--gitops-repo`; later changes go through Git.
Regenerate it with the same command after changing the deployment. It holds no secret value.
"""


def write_tree(r: Rendered, out_dir: Path, force: bool = False) -> TreeWrite:
    """Write the tree, touching only what render itself wrote before (see tree_files.py)."""
    files = with_placeholder_banners({**tree(r), "README.md": _TREE_README})
    return write_files(files, out_dir, force=force)


# `render --offline --placeholders` fills the tree from the offline plan's mocks (documentation
# IP ranges, a fake CA). Such files must never be mistaken for a deployable tree.
PLACEHOLDER_BANNER = (
    "PLACEHOLDER VALUES: rendered by `zenml-gcp-gitops render --offline --placeholders` "
    "from mocked outputs; not deployable. Re-render from a deployment before committing."
)


def _placeholder_markers() -> tuple[str, ...]:
    from ..placeholders import FAKE_PEM, MOCK_INGRESS_IP, MOCK_SQL_PRIVATE_IP

    return (MOCK_INGRESS_IP, MOCK_SQL_PRIVATE_IP, FAKE_PEM.splitlines()[1])


def with_placeholder_banners(files: dict[str, str]) -> dict[str, str]:
    """Each file holding a mocked value, and then the README, gets the banner first."""
    markers = _placeholder_markers()
    # The mock CA exists only in the offline plan's outputs: without it the IPs are real (a
    # deployment may well use a documentation range in examples).
    if not any(markers[-1] in text for text in files.values()):
        return files
    marked = {rel for rel, text in files.items() if any(m in text for m in markers)}
    out = dict(files)
    for rel in marked:
        out[rel] = f"# {PLACEHOLDER_BANNER}\n{files[rel]}"
    if "README.md" in out and "README.md" not in marked:
        out["README.md"] = f"> **{PLACEHOLDER_BANNER}**\n\n{files['README.md']}"
    return out


def placeholder_files(root: Path) -> list[Path]:
    """Files of a rendered tree that still carry the placeholder banner."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix in (".yaml", ".yml", ".md")
        and PLACEHOLDER_BANNER in p.read_text(errors="replace")[:1000]
    )
