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
    from ..gitops.kube import Kube
    from ..run_options import RunOptions, Services
    from ..state.record import DeploymentRecord
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


def sql_admin(cfg: DeploymentConfig, services: Services) -> Any:
    if services.sql_admin is not None:
        return services.sql_admin
    from .sqladmin import RestSqlAdmin

    return RestSqlAdmin(cfg.project)


def storage_client(cfg: DeploymentConfig, services: Services) -> Any:
    if services.storage_client is not None:
        return services.storage_client
    from google.cloud import storage  # type: ignore[attr-defined,unused-ignore]

    return storage.Client(project=cfg.project)


def kube_of(record: DeploymentRecord, services: Services) -> Kube:
    from ..gitops.kube import Kube, connect
    from ..outputs import InfraOutputs

    api_client = services.kube_api_client
    if api_client is not None:
        return Kube(api_client)
    data = record.recorded_outputs().get("infra", {}).get("outputs")
    return connect(InfraOutputs.from_mapping(data or {}, source="recorded infra outputs"))


def servers_of(
    cfg: DeploymentConfig, record: DeploymentRecord, options: RunOptions, services: Services
) -> Servers | None:
    """The live servers with their admin logins (from Secret Manager); None with `no_servers`."""
    if options.no_servers:
        return None
    from ..phases.base import PhaseContext
    from ..phases.register import admin_credentials, mlflow_credentials, zenml_url_of
    from .verify import Servers

    ctx = PhaseContext(
        cfg=cfg, recorded=record.recorded_outputs(), options=options, services=services
    )
    mlflow_url = ctx.recorded.get("gitops", {}).get("mlflow_url") or ctx.infra.mlflow_url
    return Servers(
        zenml_url=zenml_url_of(ctx),
        zenml_credentials=admin_credentials(ctx),
        stack=cfg.names.zenml_stack,
        mlflow_url=str(mlflow_url),
        mlflow_login=mlflow_credentials(ctx),
        timeout=options.timeout,
    )


def backup_deps(
    cfg: DeploymentConfig,
    record: DeploymentRecord,
    options: RunOptions,
    services: Services,
    log: Any,
) -> BackupDeps:
    return BackupDeps(
        sql=sql_admin(cfg, services),
        storage=storage_client(cfg, services),
        servers=servers_of(cfg, record, options, services),
        log=log,
        poll=options.sql_poll,
    )


def backup_runner(options: RunOptions, services: Services, log: Any) -> Any:
    """The callable `deploy` uses to back up before an upgrade."""

    def run(cfg: DeploymentConfig, record: DeploymentRecord) -> dict[str, Any]:
        from .backup import run_backup

        return run_backup(target_of(cfg, record), backup_deps(cfg, record, options, services, log))

    return services.backup_runner or run
