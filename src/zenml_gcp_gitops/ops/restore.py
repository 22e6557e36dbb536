"""`restore`: stop the writers, bring the databases back, restart the writers, verify.

Sources:

- a backup ID (an export taken by `backup`): each database is dropped, re-created and the
  export imported into it, so tables a later migration added do not survive;
- `--backup-run ID` (an automated or on-demand Cloud SQL backup): restored in place over the
  whole instance;
- `--point-in-time T`: Cloud SQL for MySQL cannot restore a point in time in place, it can
  only clone the instance at T into a new one. We clone, export the databases from the clone,
  delete the clone, and import the exports into the deployment's own instance. The
  instance keeps its name, private IP, users, TLS CA and Pulumi state, so nothing else changes;
  a swap to the clone would change all of those. The clone and the exports happen before the
  servers stop, so the downtime is only the import.

Whatever fails after the servers were stopped, they are started again and the error says
what state each database is in.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from ..config import echo
from ..errors import UserError
from . import sqladmin, writers
from .backup import BackupDeps, OpsTarget, backup_id, export_name, read_manifest

if TYPE_CHECKING:
    from ..gitops.kube import Kube
    from .verify import Servers

SourceKind = Literal["export", "backup_run", "point_in_time"]


@dataclass
class Source:
    kind: SourceKind
    ref: str  # backup ID, backup run ID, or RFC 3339 time

    def describe(self) -> str:
        return {
            "export": f"backup {self.ref}",
            "backup_run": f"Cloud SQL backup run {self.ref}",
            "point_in_time": f"the point in time {self.ref}",
        }[self.kind]


@dataclass
class RestoreDeps(BackupDeps):
    kube: Kube | None = None
    waits: writers.Waits = field(default_factory=writers.Waits)
    # the writers' saved state is kept here while they are down (the deployment record)
    journal: Callable[[dict[str, Any] | None], None] = lambda state: None
    saved: dict[str, Any] | None = None  # from an interrupted earlier restore
    verify_servers: Servers | None = None


def parse_point_in_time(text: str) -> str:
    """RFC 3339 in UTC, as the clone API wants it; refuses times in the future."""
    t = text.strip().replace(" ", "T")
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?", t):
        t += "Z"
    try:
        when = datetime.fromisoformat(t.replace("Z", "+00:00"))
        if when.tzinfo is not None:
            when.astimezone(UTC)  # an offset past the year's edge overflows here
    except (ValueError, OverflowError):
        raise UserError(
            f"--point-in-time {echo(text)} is not a time",
            "use RFC 3339 in UTC, e.g. 2026-01-31T12:00:00Z",
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when > datetime.now(UTC):
        raise UserError(f"--point-in-time {echo(text)} is in the future", "pick a past time")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def plan(target: OpsTarget, source: Source, deps: RestoreDeps) -> dict[str, Any]:
    """What the restore will overwrite; also checks the source exists (nothing changes)."""
    inst = target.sql_instance
    out: dict[str, Any] = {
        "source": source.describe(),
        "sql_instance": inst,
        "servers_stopped": [target.cfg.names.argocd_apps[k] for k in writers.WRITER_APPS],
    }
    if source.kind == "export":
        manifest = read_manifest(target, deps.storage, source.ref)
        out["manifest"] = manifest
        out["overwrites"] = [f"database {db} on {inst}" for db in manifest["databases"]]
    elif source.kind == "backup_run":
        runs = {str(r.get("id")): r for r in deps.sql.list_backup_runs(inst)}
        run = runs.get(source.ref)
        if run is None or run.get("status") != "SUCCESSFUL":
            known = ", ".join(k for k, r in runs.items() if r.get("status") == "SUCCESSFUL")
            raise UserError(
                f"instance {inst} has no successful backup run {echo(source.ref)}",
                f"successful runs: {known or 'none'} (`backup list` shows them)",
            )
        out["overwrites"] = [f"the whole instance {inst} (every database)"]
    else:
        out["overwrites"] = [
            f"database {db} on {inst}" for db in target.cfg.names.databases.values()
        ]
    return out


def _clone_and_export(target: OpsTarget, when: str, deps: RestoreDeps) -> dict[str, str]:
    """PITR: clone at `when`, export each database from the clone, delete the clone."""
    from .backup import databases
    from .store import BackupStore

    stamp = backup_id(datetime.fromisoformat(when.replace("Z", "+00:00")))
    clone = f"{target.sql_instance}-pitr-{stamp[:15].lower()}"[:98]
    store = BackupStore(target.backup_bucket, deps.storage)
    bid = f"pitr-{stamp}"

    def wait(op: dict[str, Any], what: str) -> dict[str, Any]:
        deps.log(f"waiting for {what}")
        return sqladmin.wait(
            deps.sql, op, what, timeout=deps.timeout, poll=deps.poll, sleep=deps.sleep
        )

    deps.log(f"cloning {target.sql_instance} at {when} into {clone}")
    wait(deps.sql.clone(target.sql_instance, clone, when), f"the clone of {target.sql_instance}")
    exports: dict[str, str] = {}
    try:
        for db in databases(target.cfg):
            uri = store.uri(export_name(bid, db))
            wait(deps.sql.export_sql(clone, uri, db), f"the export of {db} from {clone}")
            exports[db] = uri
    finally:
        deps.log(f"deleting the clone {clone}")
        try:
            wait(deps.sql.delete_instance(clone), f"the deletion of {clone}")
        except UserError as e:
            deps.log(f"could not delete {clone}: {e.message}; delete it by hand")
    return exports


def run_restore(target: OpsTarget, source: Source, deps: RestoreDeps) -> dict[str, Any]:
    """Restore; return a summary. On failure raise `UserError` saying what state the data is in."""
    if deps.kube is None:
        raise UserError("restore needs the cluster to stop the servers")
    info = plan(target, source, deps)
    inst = target.sql_instance
    exports: dict[str, str] = {}
    if source.kind == "export":
        m = info["manifest"]
        exports = {db: m["exports"][db] for db in m["databases"]}  # the backup's order
    elif source.kind == "point_in_time":
        exports = _clone_and_export(target, source.ref, deps)

    # What each database went through, for the message if anything fails.
    state: dict[str, str] = {
        db: "unchanged" for db in (exports or target.cfg.names.databases.values())
    }
    failure: UserError | None = None
    step = "stopping the servers"
    kube = deps.kube
    saved = writers.WriterState.from_dict(deps.saved) if deps.saved else None
    stopped: list[writers.WriterState] = [saved] if saved is not None else []

    def on_saved(s: writers.WriterState) -> None:
        stopped[:] = [s]
        deps.journal(s.to_dict())

    try:
        writers.stop(kube, target.cfg, deps.log, deps.waits, saved, on_saved=on_saved)
        if source.kind == "backup_run":
            step = f"restoring backup run {source.ref}"
            deps.log(f"restoring Cloud SQL backup run {source.ref} over {inst}")
            op = deps.sql.restore_backup_run(inst, source.ref)
            for db in state:
                state[db] = "being restored by Cloud SQL"
            sqladmin.wait(
                deps.sql, op, step, timeout=deps.timeout, poll=deps.poll, sleep=deps.sleep
            )
            for db in state:
                state[db] = f"restored from backup run {source.ref}"
        else:
            for db, uri in exports.items():
                step = f"replacing database {db}"
                deps.log(f"re-creating database {db}")
                try:
                    sqladmin.wait(
                        deps.sql, deps.sql.delete_database(inst, db), f"dropping {db}",
                        timeout=deps.timeout, poll=deps.poll, sleep=deps.sleep,
                    )  # fmt: skip
                except sqladmin.SqlOperationFailed as e:
                    if "not found" not in e.message.lower():
                        raise
                state[db] = "DROPPED (empty: re-create and import it again)"
                sqladmin.wait(
                    deps.sql, deps.sql.create_database(inst, db), f"creating {db}",
                    timeout=deps.timeout, poll=deps.poll, sleep=deps.sleep,
                )  # fmt: skip
                state[db] = "EMPTY (re-created; the import did not finish)"
                step = f"importing {uri} into {db}"
                deps.log(step)
                sqladmin.wait(
                    deps.sql, deps.sql.import_sql(inst, uri, db), step,
                    timeout=deps.timeout, poll=deps.poll, sleep=deps.sleep,
                )  # fmt: skip
                state[db] = f"restored from {source.describe()}"
    except UserError as e:
        failure = e
    except KeyboardInterrupt:
        failure = UserError("interrupted by the user")
    finally:
        restarted: UserError | None = None
        # Stop recorded what to bring back even if it failed half-way (it saves as it goes).
        if stopped:
            try:
                writers.start(kube, target.cfg, stopped[0], deps.log, deps.waits)
                deps.journal(None)
            except UserError as e:
                restarted = e
    if failure is not None:
        data = "; ".join(f"{db}: {s}" for db, s in state.items())
        servers = (
            "the servers are running again"
            if restarted is None
            else f"the servers did NOT come back ({restarted.message})"
        )
        raise UserError(
            f"restore failed while {step}: {failure.message}. Data: {data}. {servers}",
            "fix the cause and run the same restore again; it starts over from the source",
        )
    if restarted is not None:
        raise UserError(
            f"the data was restored from {source.describe()}, but the servers did not come "
            f"back: {restarted.message}",
            restarted.hint,
        )
    result: dict[str, Any] = {
        "source": source.describe(),
        "sql_instance": inst,
        "databases": state,
    }
    if deps.verify_servers is not None:
        from .verify import verify

        expected = (info.get("manifest") or {}).get("known") or {}
        deps.log("verifying the servers")
        result["verified"] = verify(deps.verify_servers, expected)
    return result
