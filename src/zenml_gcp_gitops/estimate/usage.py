"""Usage volumes the plan's settings decide: log ingestion and backup storage.

Each function returns the volumes and the assumptions behind them, each assumption with the
setting that changes it, so the estimate can say why a line moved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import DeploymentConfig

GIB_IN_KIB = 1024 * 1024
DAYS_PER_MONTH = 30.4  # 365 / 12, the same month as 730 hours

# Where the rules below are documented.
SQL_BACKUPS_DOC = "https://cloud.google.com/sql/docs/mysql/backup-recovery/backups"
AUDIT_LOGS_DOC = "https://cloud.google.com/logging/docs/audit#data-access"
FLOW_LOGS_DOC = "https://cloud.google.com/vpc/docs/flow-logs"


@dataclass
class Assumption:
    assumption: str
    value: str
    setting: str

    def as_dict(self) -> dict[str, str]:
        return {"assumption": self.assumption, "value": self.value, "setting": self.setting}


@dataclass
class Logs:
    workload_gib: float
    audit_gib: float
    flow_gib: float
    assumptions: list[Assumption] = field(default_factory=list)

    @property
    def total_gib(self) -> float:
        return self.workload_gib + self.audit_gib + self.flow_gib


def log_volumes(cfg: DeploymentConfig, audit_on: bool, flow_sampling: float) -> Logs:
    """Cloud Logging ingestion a month: workload logs, Data Access audit logs (one entry per
    object or secret access, when the plan turns them on) and VPC flow logs (their volume
    at full sampling times the subnet's sampling rate)."""
    est = cfg.estimate
    accesses = est.storage_operations + est.secret_accesses
    audit = accesses * est.audit_entry_kib / GIB_IN_KIB if audit_on else 0.0
    flow = est.flow_logs_gb * flow_sampling
    out = Logs(est.logging_gb, audit, flow)
    out.assumptions.append(
        Assumption(
            "workload and platform logs", f"{est.logging_gb:g} GiB/month", "estimate.logging_gb"
        )
    )
    if audit_on:
        out.assumptions += [
            Assumption(
                "Data Access audit log entries: one per object read or write in the buckets",
                f"{est.storage_operations:g}/month",
                "estimate.storage_operations (data_access_logs: false turns them off)",
            ),
            Assumption(
                "Data Access audit log entries: one per secret read",
                f"{est.secret_accesses:g}/month",
                "estimate.secret_accesses",
            ),
            Assumption(
                "size of one audit log entry",
                f"{est.audit_entry_kib:g} KiB",
                "estimate.audit_entry_kib",
            ),
        ]
    else:
        out.assumptions.append(
            Assumption("Data Access audit logs are off", "0 GiB", "data_access_logs")
        )
    out.assumptions.append(
        Assumption(
            f"VPC flow logs: {est.flow_logs_gb:g} GiB/month at full sampling, "
            f"x {flow_sampling:g} sampling",
            f"{flow:.2f} GiB/month",
            "flow_log_sampling (0 turns them off), estimate.flow_logs_gb",
        )
    )
    return out


@dataclass
class Backups:
    automated_gib: float
    on_demand_gib: float
    exports_gib: float  # SQL exports in the backup bucket (Cloud Storage)
    assumptions: list[Assumption] = field(default_factory=list)

    @property
    def sql_gib(self) -> float:
        return self.automated_gib + self.on_demand_gib


def backup_storage(cfg: DeploymentConfig, disk_gb: float, retained: int) -> Backups:
    """Backup storage the retention keeps. Cloud SQL backups are incremental: the oldest
    holds about the data, each later one what changed since the one before. Automated
    backups are kept `retained` at a time (one a day); on-demand ones (one per
    `zenml-gcp-gitops backup`) are kept until deleted, so they pile up, and the chain then
    keeps every day's changes back to the oldest of them (SQL_BACKUPS_DOC). Each `backup` also
    writes SQL exports to the backup bucket, deleted after `backup_retention_days`."""
    est = cfg.estimate
    data = est.sql_data_gb if est.sql_data_gb is not None else disk_gb
    change = est.sql_change_gb_per_day
    automated = data + change * max(retained - 1, 0)
    months = (
        est.on_demand_backup_months
        if est.on_demand_backup_months is not None
        else cfg.backup_retention_days / DAYS_PER_MONTH
    )
    kept = est.backups_per_month * months
    # The chain reaches back to the oldest backup kept: a deleted backup's changes merge into
    # the next one, so every day's changes since then stay stored.
    span_days = months * DAYS_PER_MONTH if kept else 0.0
    on_demand = max(0.0, change * (span_days - max(retained - 1, 0)))
    exports_alive = est.backups_per_month * cfg.backup_retention_days / DAYS_PER_MONTH
    exports = data * exports_alive
    out = Backups(automated, on_demand, exports)
    if est.sql_backup_gb is not None:  # the user's own figure overrides the model
        out.automated_gib, out.on_demand_gib = est.sql_backup_gb, 0.0
    out.assumptions += [
        Assumption(
            "data in Cloud SQL", f"{data:g} GiB", "estimate.sql_data_gb (default the disk size)"
        ),
        Assumption(
            "data each backup adds (backups are incremental)",
            f"{change:g} GiB/day",
            "estimate.sql_change_gb_per_day",
        ),
        Assumption(
            "automated backups kept (one a day)",
            str(retained),
            "backup_retention_days",
        ),
        Assumption(
            "on-demand backups kept (`backup` deletes its own past backup_retention_days)",
            f"{kept:.1f} ({est.backups_per_month:g}/month for {months:.1f} months)",
            "estimate.backups_per_month, estimate.on_demand_backup_months",
        ),
        Assumption(
            "SQL exports alive in the backup bucket",
            f"{exports_alive:.1f} exports of {data:g} GiB",
            "backup_retention_days, estimate.backups_per_month",
        ),
    ]
    if est.sql_backup_gb is not None:
        out.assumptions.append(
            Assumption(
                "Cloud SQL backup storage", f"{est.sql_backup_gb:g} GiB", "estimate.sql_backup_gb"
            )
        )
    return out
