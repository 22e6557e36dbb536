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
  The clone is named after the time of the run (Cloud SQL keeps a deleted name for a week),
  inherits the instance's deletion protection (turned off before it is deleted), and exports
  as its own service account (granted on the backup bucket for the export when it is not the
  instance's). A clone that cannot be deleted is an error naming the commands; the next run
  deletes the clones that earlier runs recorded (in the deployment record) before it clones
  again.

Whatever fails after the servers were stopped, they are started again and the error says
what state each database is in.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from ..errors import UserError, echo
from . import sqladmin, store_iam, writers
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
    # the PITR clones made and not yet deleted, kept in the deployment record: what proves a
    # leftover clone is ours (name -> when it was made)
    clones: dict[str, str] = field(default_factory=dict)
    save_clones: Callable[[dict[str, str]], None] = lambda clones: None
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
        # Cloud SQL drops the instance's binary logs when it restores a backup over it
        out["loses"] = (
            f"Cloud SQL also erases {inst}'s point-in-time logs: no time before this restore "
            "can be restored with --point-in-time afterwards (take a `backup` first to keep one)"
        )
    else:
        out["overwrites"] = [
            f"database {db} on {inst}" for db in target.cfg.names.databases.values()
        ]
    return out


def clone_name(instance: str, now: datetime) -> str:
    """A name no earlier restore used: Cloud SQL keeps a deleted name from reuse for a week."""
    return f"{instance}-pitr-{now.astimezone(UTC):%Y%m%dt%H%M%S}"[:98]


def _our_clone(instance: str, name: str) -> bool:
    return re.fullmatch(re.escape(f"{instance}-pitr-") + r"\d{8}t\d{6}", name) is not None


def delete_command(project: str, clone: str) -> str:
    return (
        f"gcloud sql instances patch {clone} --no-deletion-protection --project {project} && "
        f"gcloud sql instances delete {clone} --project {project} --quiet"
    )


def delete_clone(target: OpsTarget, clone: str, deps: RestoreDeps) -> None:
    """Turn off the deletion protection the clone inherited, then delete it. Raises with the
    exact commands when Cloud SQL refuses."""

    def wait(op: dict[str, Any], what: str) -> None:
        sqladmin.wait(deps.sql, op, what, timeout=deps.timeout, poll=deps.poll, sleep=deps.sleep)

    try:
        settings = deps.sql.get_instance(clone).get("settings") or {}
        if settings.get("deletionProtectionEnabled"):
            deps.log(f"turning off the deletion protection {clone} inherited")
            wait(deps.sql.set_deletion_protection(clone, False), f"unprotecting {clone}")
        deps.log(f"deleting the clone {clone}")
        wait(deps.sql.delete_instance(clone), f"the deletion of {clone}")
    except UserError as e:
        raise UserError(
            f"could not delete the point-in-time clone {clone} (it is billed while it "
            f"exists): {e.message}",
            f"delete it with `{delete_command(target.cfg.project, clone)}`, or run the same "
            "restore again: it deletes clones left by earlier runs first",
        ) from None


def _remove_earlier_clones(target: OpsTarget, deps: RestoreDeps) -> None:
    """Delete the clones earlier runs made and recorded (and our name pattern). An instance
    that is not in the record is not ours and stays."""
    existing = {str(i.get("name") or "") for i in deps.sql.list_instances()}
    for name in list(deps.clones):
        if name in existing and _our_clone(target.sql_instance, name):
            deps.log(f"found the clone {name} an earlier restore left")
            delete_clone(target, name, deps)
        _forget(deps, name)


def _forget(deps: RestoreDeps, clone: str) -> None:
    deps.clones.pop(clone, None)
    deps.save_clones(dict(deps.clones))


def _clone_and_export(target: OpsTarget, when: str, deps: RestoreDeps) -> dict[str, str]:
    """PITR: clone at `when`, export each database from the clone, delete the clone."""
    from .backup import databases
    from .store import BackupStore

    _remove_earlier_clones(target, deps)
    stamp = backup_id(datetime.fromisoformat(when.replace("Z", "+00:00")))
    clone = clone_name(target.sql_instance, deps.now())
    store = BackupStore(target.backup_bucket, deps.storage)
    bid = f"pitr-{stamp}"

    def wait(op: dict[str, Any], what: str) -> dict[str, Any]:
        deps.log(f"waiting for {what}")
        return sqladmin.wait(
            deps.sql, op, what, timeout=deps.timeout, poll=deps.poll, sleep=deps.sleep
        )

    deps.log(f"cloning {target.sql_instance} at {when} into {clone}")
    deps.clones[clone] = deps.now().isoformat(timespec="seconds")
    deps.save_clones(dict(deps.clones))  # before the clone exists: a crash cannot lose it
    exports: dict[str, str] = {}
    failure: UserError | None = None
    granted: str | None = None
    try:
        wait(
            deps.sql.clone(target.sql_instance, clone, when), f"the clone of {target.sql_instance}"
        )
        granted = _bucket_access(target, clone, deps)
        for db in databases(target.cfg):
            uri = store.uri(export_name(bid, db))
            wait(deps.sql.export_sql(clone, uri, db), f"the export of {db} from {clone}")
            exports[db] = uri
    except UserError as e:
        failure = e
    if granted is not None:
        try:
            store_iam.revoke(deps.storage, target.backup_bucket, granted)
        except UserError as e:  # the grant is on our own bucket: say so, go on
            deps.log(f"{e.message}; {e.hint}")
    names = {str(i.get("name")) for i in deps.sql.list_instances()}
    if clone in names:
        try:
            delete_clone(target, clone, deps)
        except UserError as e:
            if failure is None:
                raise
            raise UserError(f"{failure.message}; and {e.message}", e.hint) from None
    _forget(deps, clone)
    if failure is not None:
        raise failure
    return exports


def _bucket_access(target: OpsTarget, clone: str, deps: RestoreDeps) -> str | None:
    """The clone exports as its own service account. The program granted the instance's on the
    backup bucket; when the clone's differs, grant it for the export. Returns the member
    granted here (to revoke), or None."""
    src = deps.sql.get_instance(target.sql_instance).get("serviceAccountEmailAddress")
    sa = deps.sql.get_instance(clone).get("serviceAccountEmailAddress")
    if not sa or sa == src:
        return None
    member = f"serviceAccount:{sa}"
    deps.log(f"granting the clone's service account {sa} on gs://{target.backup_bucket}")
    if store_iam.grant(deps.storage, target.backup_bucket, member):
        return member
    return None


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
