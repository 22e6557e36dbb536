"""Build what the operations need from the config, the deployment record and the options.

Options (as the engine's) can inject every client: `sql_admin`, `storage_client`,
`kube_api_client`, `secret_manager`; tests use them, the CLI leaves them out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import UserError
from .backup import BackupDeps, OpsTarget

if TYPE_CHECKING:
    from ..config import DeploymentConfig
    from ..engine import DeploymentRecord
    from ..gitops.kube import Kube
    from .verify import Servers


def target_of(cfg: DeploymentConfig, record: DeploymentRecord | None) -> OpsTarget:
    out = (record.recorded_outputs().get("infra", {}).get("outputs") if record else None) or {}
    if not out.get("sql_instance"):
        raise UserError(
            f"deployment '{cfg.name}' has no recorded Cloud SQL instance",
            "deploy it first (`zenml-gcp-gitops deploy`); the infra phase records it",
        )
    return OpsTarget(
        cfg=cfg,
        sql_instance=str(out["sql_instance"]),
        backup_bucket=str(out.get("backup_bucket") or cfg.names.backup_bucket),
        artifact_buckets=[
            str(out.get("artifact_bucket") or cfg.names.artifact_bucket),
            str(out.get("mlflow_bucket") or cfg.names.mlflow_bucket),
        ],
    )


def sql_admin(cfg: DeploymentConfig, options: dict[str, Any]) -> Any:
    injected = options.get("sql_admin")
    if injected is not None:
        return injected
    from .sqladmin import RestSqlAdmin

    return RestSqlAdmin(cfg.project)


def storage_client(cfg: DeploymentConfig, options: dict[str, Any]) -> Any:
    injected = options.get("storage_client")
    if injected is not None:
        return injected
    from google.cloud import storage  # type: ignore[attr-defined,unused-ignore]

    return storage.Client(project=cfg.project)


def kube_of(record: DeploymentRecord, options: dict[str, Any]) -> Kube:
    from ..gitops.kube import Kube, connect
    from ..outputs import InfraOutputs

    api_client = options.get("kube_api_client")
    if api_client is not None:
        return Kube(api_client)
    data = record.recorded_outputs().get("infra", {}).get("outputs")
    return connect(InfraOutputs.from_mapping(data or {}, source="recorded infra outputs"))


def servers_of(
    cfg: DeploymentConfig, record: DeploymentRecord, options: dict[str, Any]
) -> Servers | None:
    """The live servers with their admin logins (from Secret Manager); None with `no_servers`."""
    if options.get("no_servers"):
        return None
    from ..phases.base import PhaseContext
    from ..phases.register import admin_credentials, mlflow_credentials, zenml_url_of
    from .verify import Servers

    ctx = PhaseContext(cfg=cfg, recorded=record.recorded_outputs(), options=options)
    mlflow_url = ctx.recorded.get("gitops", {}).get("mlflow_url") or ctx.infra.mlflow_url
    return Servers(
        zenml_url=zenml_url_of(ctx),
        zenml_credentials=admin_credentials(ctx),
        stack=cfg.names.zenml_stack,
        mlflow_url=str(mlflow_url),
        mlflow_login=mlflow_credentials(ctx),
        timeout=float(options.get("timeout", 300)),
    )


def backup_deps(
    cfg: DeploymentConfig, record: DeploymentRecord, options: dict[str, Any], log: Any
) -> BackupDeps:
    return BackupDeps(
        sql=sql_admin(cfg, options),
        storage=storage_client(cfg, options),
        servers=servers_of(cfg, record, options),
        log=log,
        poll=float(options.get("sql_poll", 5.0)),
    )


def backup_runner(options: dict[str, Any], log: Any) -> Any:
    """The callable `deploy` uses to back up before an upgrade."""

    def run(cfg: DeploymentConfig, record: DeploymentRecord) -> dict[str, Any]:
        from .backup import run_backup

        return run_backup(target_of(cfg, record), backup_deps(cfg, record, options, log))

    return options.get("backup_runner") or run
