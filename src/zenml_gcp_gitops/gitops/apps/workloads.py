"""The workloads app's objects: the ClusterSecretStore, namespaces, Workload Identity service
accounts, the ExternalSecrets the servers read, the pipelines' RBAC, the Gateway routes, and (from their own
module) the disruption budgets and the NetworkPolicies. Nothing here depends on the database
instance (its objects are in the MLflow app, see mlflow_auth_secret.py): the app syncs while
Cloud SQL is still being created."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import ConfigError
from ..template import render_template
from . import network

if TYPE_CHECKING:
    from ...config import DeploymentConfig
    from ...outputs import InfraOutputs

# The service accounts of pods that never call the Kubernetes API: no token is mounted.
API_FREE_KSAS = ("zenml_server", "mlflow")


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


def secret_store(cfg: DeploymentConfig, out: InfraOutputs, ctx: dict[str, Any]) -> dict[str, Any]:
    """The ClusterSecretStore the ExternalSecrets read through; first in this app (its own
    sync wave), so that they never find it missing."""
    n = cfg.names
    store_ns = [n.namespaces["zenml"], n.namespaces["mlflow"]]
    if cfg.gitops_repo and "gitops_repo" in out.secret_ids:
        store_ns.append(n.namespaces["argocd"])
    store: dict[str, Any] = render_template(
        "objects/cluster-secret-store.yaml", {**ctx, "store_namespaces": store_ns}
    )
    return store


def objects(cfg: DeploymentConfig, out: InfraOutputs, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    n = cfg.names
    objs = [secret_store(cfg, out, ctx)]
    objs += [
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
    objs += _external_secrets(out, ctx)
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
    objs += network.disruption_budgets(cfg, ctx)
    objs += network.network_policies(cfg, out, ctx)
    return objs
