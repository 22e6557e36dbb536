"""The HA shape: how many replicas each server runs, spread over zones, with its pod
selectors (the one definition the spread, the disruption budgets and the NetworkPolicies use)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ...config import DeploymentConfig

# The servers' pods as the charts label them (selector labels: chart name + release) and
# the port their container serves on.
SERVER_PODS = {"zenml": ("zenml", "zenml_server", 8080), "mlflow": ("mlflow", "mlflow", 5000)}


HA_REPLICAS = 2


ZONE_KEY = "topology.kubernetes.io/zone"


def _server_pods(cfg: DeploymentConfig, svc: str) -> dict[str, str]:
    """The labels every pod of a server's chart carries (its migration Jobs' pods too)."""
    chart, release, _ = SERVER_PODS[svc]
    return {
        "app.kubernetes.io/name": chart,
        "app.kubernetes.io/instance": cfg.names.helm_releases[release],
    }


def server_selectors(cfg: DeploymentConfig) -> dict[str, dict[str, str]]:
    """The pod labels the two server charts put on their server pods (not on Job pods)."""
    sel = {svc: _server_pods(cfg, svc) for svc in SERVER_PODS}
    sel["zenml"]["app.kubernetes.io/component"] = "server"
    return sel


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


def context(cfg: DeploymentConfig) -> dict[str, Any]:
    """Replicas and affinity the server charts' values read."""
    shape = ha_shape(cfg)
    return {
        "replicas": shape,
        "affinity": {
            k: (_spread(sel) if shape[k] > 1 else None) for k, sel in server_selectors(cfg).items()
        },
    }
