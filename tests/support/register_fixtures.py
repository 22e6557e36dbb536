"""Helpers shared by the register/ci tests: configs, fake infra outputs, one shared server."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.zenml_server import ZenServer, start_zenml_server

PROJECT = "zgg-test-proj"
REGION = "europe-west4"
FAKE_SA_KEY = {
    "type": "service_account",
    "project_id": PROJECT,
    "private_key_id": "0123456789abcdef",
    "private_key": "-----BEGIN PRIVATE KEY-----\nTESTONLYNOTAKEY\n-----END PRIVATE KEY-----\n",
    "client_email": f"pipelines@{PROJECT}.iam.gserviceaccount.com",
    "client_id": "1234567890",
    "auth_uri": "https://accounts.google.com/o/oauth2/auth",
    "token_uri": "https://oauth2.googleapis.com/token",
    "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
    "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
    f"pipelines%40{PROJECT}.iam.gserviceaccount.com",
    "universe_domain": "googleapis.com",
}  # every field of a key file Google issues: ZenML's GCP connector requires them


def make_cfg(name: str, **overrides: Any) -> Any:
    from zenml_gcp_gitops.config import build_config

    return build_config(None, {"project": PROJECT, "region": REGION, "name": name, **overrides})


def outputs_dict(cfg: Any, host_ip: str = "203.0.113.10", **overrides: Any) -> dict[str, Any]:
    """What `outputs --output json` would print for `cfg` (values made up, names derived)."""
    n = cfg.names
    data: dict[str, Any] = {
        "project": cfg.project,
        "region": cfg.region,
        "name": cfg.name,
        "cluster_name": n.cluster,
        "cluster_location": cfg.region,
        "cluster_endpoint": f"gke-{cfg.name}.{cfg.region}.gke.goog",
        "cluster_ca_certificate": "LS0tLS1CRUdJTi0tLS0t",
        "network": n.network,
        "subnet": n.subnet,
        "sql_instance": n.sql_instance,
        "sql_connection_name": f"{cfg.project}:{cfg.region}:{n.sql_instance}",
        "sql_private_ip": "10.10.0.3",
        "sql_server_ca_cert": "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----",
        "artifact_bucket": n.artifact_bucket,
        "mlflow_bucket": n.mlflow_bucket,
        "registry_uri": n.registry_uri,
        "kms_key": f"projects/{cfg.project}/locations/{cfg.region}/keyRings/{n.kms_keyring}/cryptoKeys/{n.kms_key}",
        "service_accounts": {k: n.sa_email(k) for k in n.service_accounts},
        "ingress_ip": host_ip,
        "zenml_host": f"zenml.{host_ip}.nip.io",
        "mlflow_host": f"mlflow.{host_ip}.nip.io",
        "secret_ids": dict(n.secrets),
    }
    if cfg.connector_auth == "service-account":
        data["pipelines_sa_key"] = json.dumps(FAKE_SA_KEY)
    data.update(overrides)
    return data


def make_outputs(cfg: Any, **overrides: Any) -> Any:
    from zenml_gcp_gitops.outputs import InfraOutputs

    return InfraOutputs.from_mapping(outputs_dict(cfg, **overrides))


def write_outputs(path: Path, cfg: Any, **overrides: Any) -> Path:
    path.write_text(json.dumps(outputs_dict(cfg, **overrides)))
    return path


_SHARED: ZenServer | None = None


def shared_server(request: pytest.FixtureRequest) -> ZenServer:
    """One real server for every register/ci test module of the session (cold start ~8 s).

    Stopped by PID when the session ends (`config.add_cleanup`), so it never outlives it.
    """
    global _SHARED
    if _SHARED is None or _SHARED.process.poll() is not None:
        store_url = os.environ.get("ZGG_TEST_ZENML_STORE_URL")  # e.g. mysql://... for MariaDB
        _SHARED = start_zenml_server(store_url=store_url)
        request.config.add_cleanup(_stop_shared)
    return _SHARED


def _stop_shared() -> None:
    global _SHARED
    if _SHARED is not None:
        _SHARED.stop()
        _SHARED = None


def admin_store(server: ZenServer) -> Any:
    from zenml_gcp_gitops.zenml.session import Credentials, connect

    return connect(
        server.url, Credentials(username=server.username, password=server.password), timeout=30
    )
