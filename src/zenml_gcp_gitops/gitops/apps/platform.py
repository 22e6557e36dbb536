"""The platform: the operators' values (External Secrets, cert-manager, the ingress layer)
and the platform app's objects (the ACME issuers, the Gateway and its certificates)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..template import render_template

if TYPE_CHECKING:
    from ...config import DeploymentConfig
    from ...outputs import InfraOutputs

LETSENCRYPT = {
    "staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
    "prod": "https://acme-v02.api.letsencrypt.org/directory",
}


def issuer(cfg: DeploymentConfig) -> str:
    """The ClusterIssuer the servers' certificates come from."""
    return cfg.names.cluster_issuers["prod"]


def ingress_values(cfg: DeploymentConfig, issuer: str, **shape: Any) -> dict[str, Any]:
    """A server chart's Ingress with ingress-nginx (its certificate from `issuer`); off behind
    the Gateway, where routes serve instead. `shape`: the chart's own host and TLS keys."""
    if cfg.ingress == "gateway":
        return {"enabled": False}
    annotations = {"cert-manager.io/cluster-issuer": issuer}
    return {
        "enabled": True,
        "className": cfg.names.ingress_class,
        "annotations": annotations,
        **shape,
    }


def context(cfg: DeploymentConfig, out: InfraOutputs) -> dict[str, Any]:
    n = cfg.names
    gateway = cfg.ingress == "gateway"
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
    return {
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
        "tls": dict(n.tls_secrets),
        "issuer": issuer(cfg),
    }


def objects(cfg: DeploymentConfig, out: InfraOutputs, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    n = cfg.names
    objs = []
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
