"""backup, restore: the day-2 commands of a deployed stack (the work is in `ops/`)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import click

from .options import ConfigSource, config_options, output_option

if TYPE_CHECKING:
    from ..config import DeploymentConfig
    from ..run_options import RunOptions, Services
    from ..state.record import DeploymentRecord, RecordStore


def _record(cfg: DeploymentConfig, services: Services) -> tuple[RecordStore, DeploymentRecord]:
    from ..errors import UserError
    from ..state.record import record_store

    store = record_store(cfg, services.record_storage_client)
    record = store.load()
    if record is None:
        raise UserError(
            f"no deployment '{cfg.name}' recorded at {store.location}",
            "deploy it first, or pass the --name/--state it was deployed with",
        )
    return store, record


def _options() -> tuple[RunOptions, Services]:
    """The flags and injected clients (tests replace this; see ops/context.py)."""
    from ..run_options import RunOptions, Services

    return RunOptions(), Services()


def _log(line: str) -> None:
    from ..ui import console_err

    console_err().print(f"  {line}", highlight=False, markup=False)


@click.group("backup", invoke_without_command=True)
@config_options
@click.option(
    "--schedule",
    type=click.Choice(["daily"]),
    help="Show how scheduled backups are kept (Cloud SQL's automated backups) and exit.",
)
@output_option
@click.pass_context
def backup(ctx: click.Context, config: ConfigSource, schedule: str | None, output: str) -> None:
    """Back up the stack: an on-demand Cloud SQL backup plus SQL exports of the ZenML, MLflow
    and MLflow auth databases, with a manifest, in the backup bucket.

    \b
    Examples:
      zenml-gcp-gitops backup --project my-proj --region europe-west4
      zenml-gcp-gitops backup list --project my-proj --region europe-west4
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..ops.backup import SCHEDULE_NOTE, run_backup
    from ..ops.context import backup_deps, target_of
    from ..ui import console, print_json

    cfg = config.load()
    if schedule:
        from pulumi_program.database import BACKUP_START

        note = SCHEDULE_NOTE.format(
            start=BACKUP_START, count=cfg.backup_retention_days, log_days=cfg.sql_log_retention_days
        )
        if output == "json":
            print_json({"schedule": "daily", "managed_by": "cloud-sql", "note": note})
        else:
            console().print(note)
        return
    options, services = _options()
    _, record = _record(cfg, services)
    manifest = run_backup(target_of(cfg, record), backup_deps(cfg, record, options, services, _log))
    if output == "json":
        print_json({"ok": True, **manifest})
        return
    console().print(
        f"[green]Backup {manifest['id']}[/green] of {cfg.name}: Cloud SQL backup run "
        f"{manifest['backup_run_id']}, exports of {', '.join(manifest['databases'])}"
    )
    console().print(f"Restore it with: zenml-gcp-gitops restore {manifest['id']}")


@backup.command("list")
@config_options
@output_option
def backup_list(config: ConfigSource, output: str) -> None:
    """The backups in the backup bucket with their manifests, and Cloud SQL's backup runs."""
    from ..ops.backup import list_backups
    from ..ops.context import sql_admin, storage_client, target_of
    from ..ui import console, print_json

    cfg = config.load()
    _, services = _options()
    _, record = _record(cfg, services)
    target = target_of(cfg, record)
    manifests = list_backups(target, storage_client(cfg, services))
    runs = sql_admin(cfg, services).list_backup_runs(target.sql_instance)
    if output == "json":
        print_json({"backups": manifests, "backup_runs": runs})
        return
    from rich.table import Table

    table = Table(title=f"Backups of {cfg.name} in gs://{target.backup_bucket}")
    for col in ("id", "finished", "zenml", "mlflow", "databases", "backup run"):
        table.add_column(col)
    for m in manifests:
        v = m.get("versions") or {}
        table.add_row(
            m["id"], str(m.get("finished_at")), str(v.get("zenml_server")),
            str(v.get("mlflow")), ", ".join(m.get("databases") or []), str(m.get("backup_run_id")),
        )  # fmt: skip
    console().print(table)
    if runs:
        console().print("Cloud SQL backup runs (restore with --backup-run ID):")
        for r in runs[:20]:
            console().print(
                f"  {r.get('id')}  {r.get('type', '')}  {r.get('status', '')}  "
                f"{r.get('endTime') or r.get('startTime') or ''}",
                markup=False,
            )


@click.command("restore")
@config_options
@click.argument("backup_id", required=False)
@click.option("--backup-run", help="Restore a Cloud SQL backup run (automated or on-demand).")
@click.option(
    "--point-in-time", help="Restore the databases as they were at this UTC time (RFC 3339)."
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--no-verify", is_flag=True, help="Skip the check of the servers afterwards.")
@output_option
def restore(
    config: ConfigSource,
    backup_id: str | None,
    backup_run: str | None,
    point_in_time: str | None,
    yes: bool,
    no_verify: bool,
    output: str,
) -> None:
    """Restore the databases: stop the servers (Argo CD), restore, restart, verify.

    \b
    Sources (one of):
      BACKUP                 an export taken by `backup` (`backup list` shows the IDs)
      --backup-run ID        a Cloud SQL automated or on-demand backup (whole instance)
      --point-in-time TIME   as of TIME (clone at TIME, export, import; see docs/operations.md)
    """
    from ..errors import ConfigError, UserError
    from ..ops import restore as rs
    from ..ops.context import backup_deps, kube_of, servers_of, target_of
    from ..ui import console, is_interactive, print_json

    given = [x for x in (backup_id, backup_run, point_in_time) if x]
    if len(given) != 1:
        raise ConfigError(
            "restore needs exactly one source",
            "pass a BACKUP id, --backup-run ID or --point-in-time TIME",
        )
    if backup_id:
        from ..errors import echo
        from ..ops.local_checks import BACKUP_ID_RE

        if not BACKUP_ID_RE.match(backup_id):
            raise ConfigError(
                f"{echo(backup_id)} is not a backup ID",
                "IDs are UTC timestamps like 20250101T120000Z; `backup list` shows them",
            )
        source = rs.Source("export", backup_id)
    elif backup_run:
        if not (backup_run.isascii() and backup_run.isdigit() and len(backup_run) <= 20):
            from ..errors import echo

            raise ConfigError(
                f"--backup-run {echo(backup_run)} is not a Cloud SQL backup run ID (a number)",
                "`backup list` shows them",
            )
        source = rs.Source("backup_run", backup_run)
    else:
        source = rs.Source("point_in_time", rs.parse_point_in_time(str(point_in_time)))
    cfg = config.load()
    options, services = _options()
    store, record = _record(cfg, services)
    target = target_of(cfg, record)
    base = backup_deps(cfg, record, dataclasses.replace(options, no_servers=True), services, _log)

    def journal(state: dict[str, Any] | None) -> None:
        if state is None:
            record.operations.pop("servers_stopped", None)
        else:
            record.operations["servers_stopped"] = state
        store.save(record)

    def save_clones(clones: dict[str, str]) -> None:
        if clones:
            record.operations["pitr_clones"] = clones
        else:
            record.operations.pop("pitr_clones", None)
        store.save(record)

    deps = rs.RestoreDeps(
        sql=base.sql,
        storage=base.storage,
        log=_log,
        poll=base.poll,
        kube=kube_of(record, services),
        journal=journal,
        saved=record.operations.get("servers_stopped"),
        clones=dict(record.operations.get("pitr_clones") or {}),
        save_clones=save_clones,
        verify_servers=None if no_verify else servers_of(cfg, record, options, services),
    )
    info = rs.plan(target, source, deps)
    warning = (
        f"Restoring {info['source']} overwrites: {'; '.join(info['overwrites'])}. "
        f"The servers ({', '.join(info['servers_stopped'])}) stop until it is done; "
        "everything written since that backup is lost."
        + (f" {info['loses']}." if info.get("loses") else "")
    )
    console().print(warning, markup=False) if output != "json" else None
    if not yes:
        if not is_interactive():
            raise UserError("restore overwrites the databases and needs confirmation", "pass --yes")
        click.confirm("Restore now?", abort=True)
    result = rs.run_restore(target, source, deps)
    if output == "json":
        print_json({"ok": True, **result})
        return
    console().print(f"[green]Restored {result['source']}[/green] into {result['sql_instance']}.")
    for db, state in result["databases"].items():
        console().print(f"  {db}: {state}", markup=False)
    if "verified" in result:
        console().print(f"  verified: {result['verified']}", markup=False)


COMMANDS: list[click.Command] = [backup, restore]
