"""`backup`: an on-demand Cloud SQL backup, SQL exports of every database and a manifest.

    1. an on-demand backup run of the instance (kept with the automated ones), waited for;
       on-demand runs this command took earlier and older than `backup_retention_days` are
       deleted then (Cloud SQL expires only its automated ones);
    2. one SQL export per database (zenml, mlflow and the MLflow auth database) to
       gs://<backup bucket>/backups/<UTC timestamp>/<database>.sql.gz, one after another
       (Cloud SQL runs one operation per instance at a time);
    3. the generations of every live object in the artifact buckets;
    4. the manifest, written last: versions, databases, export URIs, the backup run ID,
       the generations files, what the servers held, and the (redacted) config.

A backup whose manifest is missing is partial and is not listed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..errors import UserError
from . import sqladmin
from .store import MANIFEST, PREFIX, BackupStore, generations

if TYPE_CHECKING:
    from ..config import DeploymentConfig
    from .sqladmin import SqlAdmin
    from .verify import Servers

MANIFEST_VERSION = 1


def backup_id(now: datetime) -> str:
    """A sortable UTC timestamp, also a valid object-name segment."""
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def databases(cfg: DeploymentConfig) -> list[str]:
    """Every database of the instance: the ZenML and MLflow stores and MLflow's auth DB."""
    return list(dict.fromkeys(cfg.names.databases.values()))


def export_name(bid: str, database: str) -> str:
    return f"{PREFIX}{bid}/{database}.sql.gz"


@dataclass
class OpsTarget:
    """What the operations act on, from the deployment record's infra outputs."""

    cfg: DeploymentConfig
    sql_instance: str
    backup_bucket: str
    artifact_buckets: list[str]


@dataclass
class BackupDeps:
    sql: SqlAdmin
    storage: Any  # google.cloud.storage.Client
    servers: Servers | None = None  # None: no snapshot of the servers' contents
    log: Callable[[str], None] = lambda line: None
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    poll: float = 5.0
    sleep: Callable[[float], None] = time.sleep
    timeout: float = 3600.0
    extra_manifest: dict[str, Any] = field(default_factory=dict)


def _wait(deps: BackupDeps, op: dict[str, Any], what: str) -> dict[str, Any]:
    deps.log(f"waiting for {what}")
    return sqladmin.wait(deps.sql, op, what, timeout=deps.timeout, poll=deps.poll, sleep=deps.sleep)


RUN_DESCRIPTION = "zenml-gcp-gitops backup "  # + backup ID: marks the runs `backup` took


def _run_time(run: dict[str, Any]) -> datetime | None:
    for key in ("startTime", "enqueuedTime", "windowStartTime"):
        text = str(run.get(key) or "")
        if text:
            try:
                return datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                continue
    return None


def expire_on_demand_runs(target: OpsTarget, deps: BackupDeps, keep: str | None) -> list[str]:
    """Delete the on-demand backup runs `backup` took that are older than the retention.

    Cloud SQL's `retainedBackups` expires only automated runs; on-demand ones stay (and are
    billed) until deleted. Only runs this tool took (by their description) are touched."""
    days = target.cfg.backup_retention_days
    now = deps.now()
    expired: list[str] = []
    for run in deps.sql.list_backup_runs(target.sql_instance):
        rid, when = str(run.get("id") or ""), _run_time(run)
        ours = run.get("type") == "ON_DEMAND" and str(run.get("description") or "").startswith(
            RUN_DESCRIPTION
        )
        if not ours or rid == keep or when is None or (now - when).days < days:
            continue
        deps.log(
            f"expiring on-demand backup run {rid} taken {when:%Y-%m-%d}: older than "
            f"backup_retention_days ({days})"
        )
        _wait(deps, deps.sql.delete_backup_run(target.sql_instance, rid), f"deleting run {rid}")
        expired.append(rid)
    return expired


def run_backup(target: OpsTarget, deps: BackupDeps) -> dict[str, Any]:
    """Take the backup; return its manifest. Raises `UserError` naming the step that failed."""
    cfg = target.cfg
    store = BackupStore(target.backup_bucket, deps.storage)
    started = deps.now()
    bid = backup_id(started)
    inst = target.sql_instance
    known = None
    if deps.servers is not None:
        from .verify import snapshot

        deps.log("reading what the servers hold")
        known = snapshot(deps.servers)

    deps.log(f"on-demand backup of Cloud SQL instance {inst}")
    op = deps.sql.create_backup_run(inst, f"{RUN_DESCRIPTION}{bid}")
    op = _wait(deps, op, f"the on-demand backup of {inst}")
    backup_run = str((op.get("backupContext") or {}).get("backupId") or "") or None

    expired = expire_on_demand_runs(target, deps, keep=backup_run)

    exports: dict[str, str] = {}
    for db in databases(cfg):
        uri = store.uri(export_name(bid, db))
        deps.log(f"exporting database {db} to {uri}")
        try:
            _wait(deps, deps.sql.export_sql(inst, uri, db), f"the export of database {db}")
        except UserError as e:
            raise UserError(
                f"backup {bid} is incomplete: {e.message}",
                (e.hint + "; " if e.hint else "")
                + f"the on-demand Cloud SQL backup {backup_run or '(id unknown)'} did finish; "
                "re-run `zenml-gcp-gitops backup` for a complete export",
            ) from None
        exports[db] = uri

    artifacts: dict[str, Any] = {}
    for bucket in target.artifact_buckets:
        gens = generations(deps.storage, bucket)
        name = f"{PREFIX}{bid}/generations/{bucket}.json"
        store.put_json(name, gens)
        artifacts[bucket] = {
            "objects": len(gens),
            "max_generation": max(gens.values(), default=0),
            "generations": store.uri(name),
        }

    v = cfg.versions
    manifest: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION,
        "id": bid,
        "kind": "export",
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": deps.now().isoformat(timespec="seconds"),
        "deployment": cfg.name,
        "project": cfg.project,
        "sql_instance": inst,
        "backup_run_id": backup_run,
        "expired_backup_runs": expired,
        "databases": databases(cfg),
        "exports": exports,
        "artifact_buckets": artifacts,
        "versions": {
            "package": __version__,
            "zenml_server": (known or {}).get("zenml_version") or v.zenml_chart,
            "mlflow": (known or {}).get("mlflow_version"),
            "charts": {
                "zenml": v.zenml_chart,
                "mlflow": v.mlflow_chart,
                "argocd": v.argocd,
                "cert_manager": v.cert_manager,
                "external_secrets": v.external_secrets,
                "ingress_nginx": v.ingress_nginx,
            },
        },
        "known": known,
        "config": cfg.redacted(),
        **deps.extra_manifest,
    }
    store.put_json(f"{PREFIX}{bid}/{MANIFEST}", manifest)
    deps.log(f"backup {bid} written to gs://{target.backup_bucket}/{PREFIX}{bid}/")
    return manifest


def list_backups(target: OpsTarget, storage: Any) -> list[dict[str, Any]]:
    """The manifests in the backup bucket, oldest first."""
    store = BackupStore(target.backup_bucket, storage)
    out = []
    for bid in store.backup_ids():
        m = store.get_json(f"{PREFIX}{bid}/{MANIFEST}")
        if isinstance(m, dict):
            out.append(m)
    return out


def read_manifest(target: OpsTarget, storage: Any, bid: str) -> dict[str, Any]:
    store = BackupStore(target.backup_bucket, storage)
    m = store.get_json(f"{PREFIX}{bid}/{MANIFEST}")
    if not isinstance(m, dict):
        known = store.backup_ids()
        hint = f"known backups: {', '.join(known[-5:])}" if known else "take one with `backup`"
        raise UserError(f"no backup {bid} in gs://{target.backup_bucket}", hint)
    return m


SCHEDULE_NOTE = (
    "Cloud SQL's automated backups already run daily at {start} UTC and keep {count}; with "
    "point-in-time recovery (binary logs kept {log_days} days). No scheduler is added: "
    "`backup` takes an extra, on-demand backup plus SQL exports."
)
