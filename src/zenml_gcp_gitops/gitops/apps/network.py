"""Network policies and disruption budgets of the stack's namespaces: deny by default, let
in only the ingress layer and pipeline pods, and keep one server pod up through node drains."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from ..template import render_template
from .ha import SERVER_PODS, _server_pods, server_selectors
from .mlflow import MLFLOW_MIGRATE_JOB, _migrate_pods

if TYPE_CHECKING:
    from ...config import DeploymentConfig
    from ...outputs import InfraOutputs

# Where Google's load balancers connect to backends from: the Gateway's Envoy proxies sit in
# the proxy-only subnet; health checks come from Google's documented prober ranges.
LB_HEALTH_CHECK_RANGES = ("35.191.0.0/16", "130.211.0.0/22")
PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
ACME_SOLVER_PORT = 8089  # cert-manager's HTTP-01 solver pods (ingress-nginx only)


def disruption_budgets(cfg: DeploymentConfig, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """A PodDisruptionBudget per server that runs more than one pod."""
    n = cfg.names
    objs = []
    for svc, selector in server_selectors(cfg).items():
        if ctx["replicas"][svc] > 1:
            obj = {"name": f"{svc}-server", "namespace": n.namespaces[svc], "selector": selector}
            objs.append(render_template("objects/pdb.yaml", {**ctx, "obj": obj}))
    return objs


def sql_cidr(out: InfraOutputs) -> str:
    """The private services range the database's address is in: the exported range (known
    before the instance exists, so the policies do not wait for it); older stacks export
    none, and the range is the /PSA_PREFIX_LENGTH block that holds the instance's IP."""
    from ...config import PSA_PREFIX_LENGTH

    cidr = out.sql_range or f"{out.sql_private_ip}/{PSA_PREFIX_LENGTH}"
    return str(ipaddress.ip_network(cidr, strict=False))


def network_policies(
    cfg: DeploymentConfig, out: InfraOutputs, ctx: dict[str, Any]
) -> list[dict[str, Any]]:
    """Deny ingress by default in the stack's namespaces; let in only the ingress layer and
    pipeline pods, to the servers' serving ports; limit what the servers connect to."""
    from ...config import PROXY_CIDR

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
    sql_range = sql_cidr(out)
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
