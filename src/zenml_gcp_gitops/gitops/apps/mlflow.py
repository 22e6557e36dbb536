"""The MLflow application: its chart values (image, ingress, store, the migration Job) and
the labels of the migration Job's pods."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ... import mlflow_auth
from . import platform

if TYPE_CHECKING:
    from ...config import DeploymentConfig
    from ...outputs import InfraOutputs

MLFLOW_IMAGE = "burakince/mlflow"

MLFLOW_MIGRATE_JOB = "mlflow-migrate"  # the Sync-hook Job that migrates MLflow's schemas

# Argo CD sync waves inside the MLflow app: the objects made from database outputs (the CA,
# the auth ini; mlflow_auth_secret.py), then the migration Job (a Sync hook that mounts them),
# then the chart's own objects (wave 0). A PreSync Job would run before any of them exists,
# and as hooks they would be neither diffed nor kept between syncs.
DB_OBJECTS_WAVE = "-2"
MIGRATE_JOB_WAVE = "-1"

# Where MLflow's pod mounts the Cloud SQL server CA (argocd/values/mlflow.yaml)
SQL_CA_DIR = "/etc/cloudsql"
SQL_CA_FILE = "server-ca.pem"


def _migrate_pods(cfg: DeploymentConfig) -> dict[str, str]:
    """The MLflow migration Job's pods: not the servers' labels, so no Service sends to them."""
    return {
        "app.kubernetes.io/name": MLFLOW_MIGRATE_JOB,
        "app.kubernetes.io/instance": cfg.names.helm_releases["mlflow"],
    }


def context(cfg: DeploymentConfig, out: InfraOutputs, issuer: str) -> dict[str, Any]:
    n = cfg.names
    ingress = platform.ingress_values(
        cfg,
        issuer,
        hosts=[{"host": out.mlflow_host, "paths": [{"path": "/", "pathType": "Prefix"}]}],
        tls=[{"secretName": n.tls_secrets["mlflow"], "hosts": [out.mlflow_host]}],
    )
    return {
        "mlflow_host": out.mlflow_host,
        "mlflow_ingress": ingress,
        "mlflow_bucket": out.mlflow_bucket,
        "mlflow_image": {"repository": MLFLOW_IMAGE, "tag": cfg.versions.mlflow},
        "mlflow_migrate": {
            "name": MLFLOW_MIGRATE_JOB,
            "labels": _migrate_pods(cfg),
            "wave": MIGRATE_JOB_WAVE,
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
    }
