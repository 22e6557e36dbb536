"""Upgrades are re-runs of `deploy` with newer versions; this makes them safe.

- `version_changes` compares the versions the deployment record holds with the config's,
  side by side (the package too);
- `check_downgrade` refuses an older ZenML server: its database migrations are one-way;
- `before_deploy` takes a backup when the ZenML or MLflow version changes, and records its ID
  (and the version change) in the deployment record before any phase runs;
- `watch_migration` follows the ZenML chart's pre-sync migration Job and, when it fails,
  stops with its logs and the exact `restore` command for that backup.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..errors import ConfigError, PhaseError, UserError

if TYPE_CHECKING:
    from ..config import DeploymentConfig
    from ..gitops.kube import Kube
    from ..state.record import DeploymentRecord

WATCHED = (
    "zenml_chart",
    "mlflow_chart",
    "argocd",
    "cert_manager",
    "external_secrets",
    "ingress_nginx",
)
BACKUP_TRIGGERS = ("zenml_chart", "mlflow_chart")
PACKAGE = "package"


def _parse(v: str) -> tuple[tuple[int, ...], str]:
    core, _, pre = v.lstrip("v").partition("-")
    nums = []
    for part in core.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        nums.append(int(digits or 0))
    return tuple(nums), pre


def compare(old: str, new: str) -> int:
    """-1, 0 or 1 as `new` is older, equal to or newer than `old` (pre-releases sort first)."""
    (a, ap), (b, bp) = _parse(old), _parse(new)
    if a != b:
        return 1 if b > a else -1
    if ap == bp:
        return 0
    if not bp:
        return 1  # 1.0.0-rc1 -> 1.0.0
    if not ap:
        return -1
    return 1 if bp > ap else -1


@dataclass(frozen=True)
class Change:
    key: str
    old: str
    new: str

    @property
    def direction(self) -> str:
        c = compare(self.old, self.new)
        return "upgrade" if c > 0 else "downgrade" if c < 0 else "same"

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key, "from": self.old, "to": self.new, "direction": self.direction}


def recorded_versions(record: DeploymentRecord | None) -> dict[str, str]:
    """The versions the last deploy used: its config's pins and the package that ran it."""
    if record is None:
        return {}
    out = {k: str(v) for k, v in ((record.config or {}).get("versions") or {}).items()}
    pkg = (record.operations or {}).get("package_version")
    if pkg:
        out[PACKAGE] = str(pkg)
    return out


def version_changes(record: DeploymentRecord | None, cfg: DeploymentConfig) -> list[Change]:
    old = recorded_versions(record)
    if not old:
        return []
    new = {k: str(getattr(cfg.versions, k)) for k in WATCHED}
    new[PACKAGE] = __version__
    return [Change(k, old[k], new[k]) for k in (PACKAGE, *WATCHED) if k in old and old[k] != new[k]]


def check_downgrade(changes: list[Change], allow: bool) -> None:
    for c in changes:
        if c.key == "zenml_chart" and c.direction == "downgrade" and not allow:
            raise ConfigError(
                f"versions.zenml_chart: {c.new} is older than the deployed {c.old}; the ZenML "
                "server's database migrations are one-way, so an older server cannot read it",
                f"keep {c.old} or newer, or restore a backup taken on {c.new} first "
                "(`backup list`); --allow-downgrade skips this check",
            )


def deployed(record: DeploymentRecord | None) -> bool:
    """True when the servers exist and hold data: gitops finished once."""
    gitops = record.phases.get("gitops") if record is not None else None
    return gitops is not None and gitops.status in ("succeeded", "failed", "interrupted")


BackupRunner = Callable[["DeploymentConfig", "DeploymentRecord"], dict[str, Any]]


def before_deploy(
    cfg: DeploymentConfig,
    record: DeploymentRecord | None,
    *,
    skip_backup: bool,
    allow_downgrade: bool,
    run_backup: BackupRunner | None,
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, Any] | None:
    """Guard a re-deploy: refuse a downgrade, back up when ZenML or MLflow changes.

    Returns the upgrade entry to record (None when no version changed)."""
    changes = version_changes(record, cfg)
    if not changes:
        return None
    check_downgrade(changes, allow_downgrade)
    entry: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "changes": [c.to_dict() for c in changes],
        "backup_id": None,
    }
    data_changes = [c for c in changes if c.key in BACKUP_TRIGGERS]
    if data_changes and record is not None and deployed(record):
        if skip_backup:
            entry["backup_skipped"] = True
            log("no backup before the upgrade (--skip-backup)")
        else:
            if run_backup is None:
                raise UserError("no backup runner configured")  # pragma: no cover
            what = ", ".join(f"{c.key} {c.old} -> {c.new}" for c in data_changes)
            log(f"backing up before the upgrade ({what})")
            try:
                manifest = run_backup(cfg, record)
            except UserError as e:
                raise UserError(
                    f"the backup before the upgrade failed, so nothing was changed: {e.message}",
                    (e.hint + "; " if e.hint else "")
                    + "fix it and re-run deploy, or pass --skip-backup to upgrade without one",
                ) from None
            entry["backup_id"] = manifest["id"]
    return entry


def restore_command(cfg: DeploymentConfig, backup_id: str | None) -> str:
    if backup_id is None:
        return (
            "no backup was taken (--skip-backup); `zenml-gcp-gitops backup list` shows older ones"
        )
    return f"zenml-gcp-gitops restore {backup_id} --project {cfg.project} --name {cfg.name} --yes"


# ---------------------------------------------------------------- the migration Job


JOB = ("batch/v1", "Job")


def migration_job_name(cfg: DeploymentConfig) -> str:
    return f"{cfg.names.helm_releases['zenml_server']}-db-migration"


def watch_migration(
    kube: Kube,
    cfg: DeploymentConfig,
    version: str,
    backup_id: str | None,
    *,
    timeout: float = 1800.0,
    poll: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    log: Callable[[str], None] = lambda line: None,
) -> str:
    """Wait for the ZenML server at `version`: the pre-sync migration Job ran and the new
    server is ready. A failed Job stops with its logs and the restore command."""
    ns = cfg.names.namespaces["zenml"]
    release = cfg.names.helm_releases["zenml_server"]
    job_name = migration_job_name(cfg)
    start = clock()
    seen_job = False
    while True:
        job = kube.get(*JOB, job_name, ns)
        if job is not None:
            seen_job = True
            status = job.get("status") or {}
            if int(status.get("failed") or 0) > 0:
                logs = kube.job_logs(job_name, ns)
                tail = "\n".join(f"    {line}" for line in logs[-40:]) or "    (no logs)"
                raise PhaseError(
                    f"the ZenML database migration to {version} failed (Job {ns}/{job_name}); "
                    f"its logs:\n{tail}",
                    "the database may be half-migrated; restore the backup taken before the "
                    f"upgrade with: {restore_command(cfg, backup_id)}",
                )
        for dep in kube.list_objects(
            "apps/v1",
            "Deployment",
            namespace=ns,
            label_selector=f"app.kubernetes.io/instance={release}",
        ):
            labels = (dep.get("metadata") or {}).get("labels") or {}
            ready = int((dep.get("status") or {}).get("readyReplicas") or 0)
            if labels.get("app.kubernetes.io/version") == version and ready > 0:
                log(
                    f"ZenML server {version} is ready (migration {'done' if seen_job else 'finished'})"
                )
                return "succeeded"
        if clock() - start > timeout:
            raise PhaseError(
                f"the ZenML server did not come up at {version} within {int(timeout)}s",
                "check the migration Job and the server pods; if the database is damaged, "
                f"restore with: {restore_command(cfg, backup_id)}",
            )
        sleep(poll)
