"""A fake Cloud SQL Admin API: one project's instances, their databases and operations.

It behaves like the service in the ways the product must cope with, and decides nothing:
operations take a few polls to finish; an instance runs one operation at a time (a second
one is refused with 409, as Cloud SQL does); an export writes the database's content to the
bucket (through the storage client it is given), an import reads it back. Knobs make a step
fail. `calls` is the journal tests read the order of events from.

It refuses what Cloud SQL refuses, with the API's HTTP code (`SqlApiError`; the loopback server
in tests/fakes/google_rest.py turns it into Google's error body): a missing instance (404), an
existing clone destination (409), deleting an instance with deletion protection (400),
creating an existing database (409), deleting a missing one (404), an import into a database
that does not exist (the operation fails).
Also as the API does: a clone inherits its source's deletion protection; deleting a protected
instance is refused when asked (HTTP 400) until the protection is patched off; a name in use,
or deleted in the last week, cannot be taken by a clone; backup runs carry their type,
description and start time.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any


class SqlApiError(Exception):
    """A refusal as the SQL Admin API answers it: HTTP code, status, message, reason."""

    def __init__(self, code: int, status: str, message: str, reason: str = "") -> None:
        super().__init__(f"{code} {status}: {message}")
        self.code, self.status, self.message, self.reason = code, status, message, reason


def _no_instance() -> SqlApiError:
    return SqlApiError(
        404, "NOT_FOUND", "The Cloud SQL instance does not exist.", "instanceDoesNotExist"
    )


@dataclass
class FakeInstance:
    name: str
    databases: dict[str, list[str]]  # database -> rows (content)
    backup_runs: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    busy: str | None = None  # name of the running operation
    deletion_protection: bool = False
    service_account: str = "p123456789-abcdef@gcp-sa-cloud-sql.iam.gserviceaccount.com"
    run_meta: dict[str, dict[str, Any]] = field(default_factory=dict)  # backup run -> fields


class FakeSqlAdmin:
    def __init__(self, storage: Any, project: str = "acme-ml-prod", polls_per_op: int = 2) -> None:
        self.storage = storage
        self.project = project
        self.polls_per_op = polls_per_op
        self.instances: dict[str, FakeInstance] = {}
        self.ops: dict[str, dict[str, Any]] = {}
        self._left: dict[str, int] = {}
        self._finish: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self.calls: list[str] = []
        self.fail: dict[str, str] = {}  # call key ("import:mlflow", "export:zenml", ...) -> message
        self.history: dict[str, dict[str, list[str]]] = {}  # "time" -> databases (for PITR)
        self.deleted: set[str] = set()  # names Cloud SQL keeps from reuse for a week
        self.now = "2030-01-01T00:00:00Z"  # the startTime of the next backup run
        # (bucket, service account) -> may it write there; None: every account may
        self.bucket_access: Any = None
        self.clone_service_account: str | None = None  # a clone's own account, if not the source's

    def add_instance(
        self, name: str, databases: dict[str, list[str]], deletion_protection: bool = False
    ) -> FakeInstance:
        inst = FakeInstance(
            name,
            {k: list(v) for k, v in databases.items()},
            deletion_protection=deletion_protection,
        )
        self.instances[name] = inst
        return inst

    # -- operations

    def _start(
        self, instance: str, kind: str, key: str, finish: Any, extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        inst = self.instances.get(instance)
        if inst is None:
            raise _no_instance()
        if inst.busy is not None and self.ops[inst.busy]["status"] != "DONE":
            raise SqlApiError(
                409,
                "ABORTED",
                "Operation failed because another operation was already in progress.",
                "operationInProgress",
            )
        name = f"op-{next(self._ids)}"
        self.calls.append(f"{key}")
        op = {
            "name": name,
            "status": "PENDING",
            "operationType": kind,
            "targetId": instance,
            **(extra or {}),
        }
        self.ops[name] = op
        self._left[name] = self.polls_per_op
        self._finish[name] = (finish, key)
        inst.busy = name
        return dict(op)

    def get_operation(self, name: str) -> dict[str, Any]:
        if name not in self.ops:
            raise SqlApiError(
                404, "NOT_FOUND", f"The operation {name} does not exist.", "operationDoesNotExist"
            )
        op = self.ops[name]
        if op["status"] != "DONE":
            self._left[name] -= 1
            op["status"] = "RUNNING"
            if self._left[name] <= 0:
                finish, key = self._finish[name]
                op["status"] = "DONE"
                # a knob ending in "*" fails every call whose key starts with the rest
                hit = next(
                    (
                        k
                        for k in self.fail
                        if k == key or (k.endswith("*") and key.startswith(k[:-1]))
                    ),
                    None,
                )
                if hit is not None:
                    op["error"] = {"errors": [{"code": "ERROR", "message": self.fail[hit]}]}
                    self.calls.append(f"failed:{key}")
                else:
                    try:
                        finish()
                    except SqlApiError as e:  # refused while running: the operation's error
                        op["error"] = {"errors": [{"code": e.status, "message": e.message}]}
                        self.calls.append(f"failed:{key}")
                    else:
                        self.calls.append(f"done:{key}")
        return dict(op)

    # -- API

    def get_instance(self, instance: str) -> dict[str, Any]:
        inst = self.instances.get(instance)
        if inst is None:
            raise _no_instance()
        return {
            "name": instance,
            "project": self.project,
            "state": "RUNNABLE",
            "serviceAccountEmailAddress": inst.service_account,
            "settings": {"deletionProtectionEnabled": inst.deletion_protection},
        }

    def list_instances(self) -> list[dict[str, Any]]:
        return [self.get_instance(name) for name in self.instances]

    def patch_instance(self, instance: str, body: dict[str, Any]) -> dict[str, Any]:
        """instances.patch; only settings.deletionProtectionEnabled has an effect here."""
        inst = self.instances.get(instance)
        if inst is None:
            raise _no_instance()
        flag = (body.get("settings") or {}).get("deletionProtectionEnabled")

        def finish() -> None:
            if flag is not None:
                inst.deletion_protection = bool(flag)

        key = f"protect:{instance}={bool(flag)}" if flag is not None else f"patch:{instance}"
        return self._start(instance, "UPDATE", key, finish)

    def set_deletion_protection(self, instance: str, enabled: bool) -> dict[str, Any]:
        return self.patch_instance(instance, {"settings": {"deletionProtectionEnabled": enabled}})

    def _inst(self, instance: str) -> FakeInstance:
        if instance not in self.instances:
            raise _no_instance()
        return self.instances[instance]

    def _db(self, instance: str, database: str, exists: bool) -> FakeInstance:
        inst = self.instances.get(instance)
        if inst is None:
            raise _no_instance()
        if exists and database not in inst.databases:
            raise SqlApiError(404, "NOT_FOUND", f"Database {database} not found.", "notFound")
        if not exists and database in inst.databases:
            raise SqlApiError(
                409, "ALREADY_EXISTS", f"Database {database} already exists.", "alreadyExists"
            )
        return inst

    def create_backup_run(self, instance: str, description: str) -> dict[str, Any]:
        run_id = str(1700000000000 + next(self._ids))
        inst = self._inst(instance)
        meta = {"type": "ON_DEMAND", "description": description, "startTime": self.now}

        def finish() -> None:
            inst.backup_runs[run_id] = {k: list(v) for k, v in inst.databases.items()}
            inst.run_meta[run_id] = meta

        return self._start(instance, "BACKUP_VOLUME", "backup_run", finish,
                           {"backupContext": {"backupId": run_id}})  # fmt: skip

    def list_backup_runs(self, instance: str) -> list[dict[str, Any]]:
        inst = self._inst(instance)
        return [
            {"id": rid, "status": "SUCCESSFUL", "type": "ON_DEMAND", **inst.run_meta.get(rid, {})}
            for rid in inst.backup_runs
        ]

    def delete_backup_run(self, instance: str, backup_run_id: str) -> dict[str, Any]:
        inst = self._inst(instance)

        def finish() -> None:
            inst.backup_runs.pop(backup_run_id)
            inst.run_meta.pop(backup_run_id, None)

        return self._start(instance, "DELETE_BACKUP", f"delete_run:{backup_run_id}", finish)

    def _bucket_obj(self, uri: str) -> tuple[str, str]:
        bucket, _, name = uri.removeprefix("gs://").partition("/")
        return bucket, name

    def export_sql(self, instance: str, uri: str, database: str) -> dict[str, Any]:
        inst = self._inst(instance)

        bucket, _ = self._bucket_obj(uri)
        if self.bucket_access is not None and not self.bucket_access(bucket, inst.service_account):
            self.fail.setdefault(
                f"export:{database}@{instance}",
                f"403 The service account {inst.service_account} does not have the required "
                f"permissions for the bucket {bucket}",
            )

        def finish() -> None:
            bucket, name = self._bucket_obj(uri)
            rows = inst.databases[database]
            self.storage.bucket(bucket).blob(name).upload_from_string(json.dumps(rows))

        return self._start(instance, "EXPORT", f"export:{database}@{instance}", finish)

    def import_sql(self, instance: str, uri: str, database: str) -> dict[str, Any]:
        inst = self._inst(instance)

        def finish() -> None:
            if database not in inst.databases:
                raise SqlApiError(
                    400, "ERROR", f"ERROR 1049 (42000): Unknown database '{database}'"
                )
            bucket, name = self._bucket_obj(uri)
            inst.databases[database] = json.loads(
                self.storage.bucket(bucket).blob(name).download_as_text()
            )

        return self._start(instance, "IMPORT", f"import:{database}", finish)

    def delete_database(self, instance: str, database: str) -> dict[str, Any]:
        inst = self._db(instance, database, exists=True)
        return self._start(instance, "DELETE_DATABASE", f"drop:{database}",
                           lambda: inst.databases.pop(database, None))  # fmt: skip

    def create_database(self, instance: str, database: str) -> dict[str, Any]:
        inst = self._db(instance, database, exists=False)
        return self._start(instance, "CREATE_DATABASE", f"create:{database}",
                           lambda: inst.databases.setdefault(database, []))  # fmt: skip

    def restore_backup_run(self, instance: str, backup_run_id: str) -> dict[str, Any]:
        inst = self._inst(instance)

        def finish() -> None:
            inst.databases = {k: list(v) for k, v in inst.backup_runs[backup_run_id].items()}

        return self._start(instance, "RESTORE_VOLUME", f"restore_run:{backup_run_id}", finish)

    def clone(self, instance: str, destination: str, point_in_time: str) -> dict[str, Any]:
        if destination in self.instances or destination in self.deleted:
            raise SqlApiError(
                409,
                "ALREADY_EXISTS",
                f"The Cloud SQL instance {destination} already exists or was deleted recently.",
                "instanceAlreadyExists",
            )
        source = self._inst(instance)

        def finish() -> None:
            past = self.history[point_in_time]
            clone = self.add_instance(
                destination, past, deletion_protection=source.deletion_protection
            )
            clone.service_account = self.clone_service_account or source.service_account

        return self._start(instance, "CLONE", f"clone:{destination}", finish)

    def delete_instance(self, instance: str) -> dict[str, Any]:
        inst = self.instances.get(instance)
        if inst is not None and inst.deletion_protection:
            self.calls.append(f"refused:delete_instance:{instance}")
            raise SqlApiError(
                400,
                "FAILED_PRECONDITION",
                "The instance is protected from deletion. Set deletionProtectionEnabled to "
                "false on the instance, then delete it.",
                "deletionProtectionEnabled",
            )

        def finish() -> None:
            self.instances.pop(instance)
            self.deleted.add(instance)

        return self._start(instance, "DELETE", f"delete_instance:{instance}", finish)
