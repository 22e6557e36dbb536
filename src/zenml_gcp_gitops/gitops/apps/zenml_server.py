"""The ZenML server application: the values its chart reads (ingress, config dir)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import platform

if TYPE_CHECKING:
    from ...config import DeploymentConfig
    from ...outputs import InfraOutputs

# ZENML_CONFIG_PATH in the ZenML server image, where its chart mounts an emptyDir
ZENML_CONFIG_DIR = "/zenml/.zenconfig"


def context(cfg: DeploymentConfig, out: InfraOutputs, issuer: str) -> dict[str, Any]:
    n = cfg.names
    ingress = platform.ingress_values(
        cfg,
        issuer,
        host=out.zenml_host,
        path="/",
        tls={"enabled": True, "secretName": n.tls_secrets["zenml"]},
    )
    return {
        "zenml_host": out.zenml_host,
        "zenml_url": out.zenml_url,
        "zenml_ingress": ingress,
        "zenml_config_dir": ZENML_CONFIG_DIR,
        "analytics": cfg.analytics,
    }
