"""MLflow's auth bootstrap: the basic_auth.ini Secret the MLflow pods mount, filled by
External Secrets from Secret Manager (never a value in Git)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ... import mlflow_auth
from ...errors import ConfigError
from ..template import render_template
from .mlflow import SQL_CA_DIR, SQL_CA_FILE

if TYPE_CHECKING:
    from ...config import DeploymentConfig
    from ...outputs import InfraOutputs


def config_secret(cfg: DeploymentConfig, out: InfraOutputs, ctx: dict[str, Any]) -> dict[str, Any]:
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
