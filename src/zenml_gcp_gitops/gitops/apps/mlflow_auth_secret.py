"""The MLflow objects that carry database outputs: the basic_auth.ini Secret the MLflow pods
mount, filled by External Secrets from Secret Manager (never a value in Git), and the Cloud
SQL server CA. They ride in the MLflow app (which waits for the database), not in workloads
(which syncs before the database exists)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ... import mlflow_auth
from ...errors import ConfigError
from ..template import render_template
from .mlflow import DB_OBJECTS_WAVE, SQL_CA_DIR, SQL_CA_FILE

if TYPE_CHECKING:
    from ...config import DeploymentConfig
    from ...outputs import InfraOutputs


def helm_literal(text: str) -> str:
    """`text` escaped for the chart's `tpl`, which every extraDeploy object goes through:
    its Go template marks (External Secrets' fields) come out as written."""
    return text.replace("{{", '{{ "{{" }}')


def database_objects(
    cfg: DeploymentConfig, out: InfraOutputs, ctx: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """The server CA ConfigMap and the auth ini ExternalSecret, as MLflow extraDeploy items."""
    ca: dict[str, Any] = render_template("objects/sql-ca-configmap.yaml", ctx)
    es = config_secret(cfg, out, ctx)
    data = es["spec"]["target"]["template"]["data"]
    data[mlflow_auth.CONFIG_FILE] = helm_literal(data[mlflow_auth.CONFIG_FILE])
    for obj in (ca, es):
        obj["metadata"]["annotations"] = {"argocd.argoproj.io/sync-wave": DB_OBJECTS_WAVE}
    return {"sql_ca": ca, "auth_config": es}


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
