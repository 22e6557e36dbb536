"""The Cloud SQL Admin API calls the operations need, behind one small interface.

Every call returns the API's Operation (a dict); `wait` polls it until DONE. Cloud SQL runs
one administrative operation per instance at a time, so callers run them one after another.
Tests run `RestSqlAdmin` against a loopback server that answers as the API does
(tests/fakes/google_rest.py), with a fake that keeps operations and databases in memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from ..errors import UserError

SQLADMIN = "https://sqladmin.googleapis.com/v1"
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


class SqlAdmin(Protocol):
    def get_instance(self, instance: str) -> dict[str, Any]: ...
    def create_backup_run(self, instance: str, description: str) -> dict[str, Any]: ...
    def list_backup_runs(self, instance: str) -> list[dict[str, Any]]: ...
    def delete_backup_run(self, instance: str, backup_run_id: str) -> dict[str, Any]: ...
    def list_instances(self) -> list[dict[str, Any]]: ...
    def set_deletion_protection(self, instance: str, enabled: bool) -> dict[str, Any]: ...
    def export_sql(self, instance: str, uri: str, database: str) -> dict[str, Any]: ...
    def import_sql(self, instance: str, uri: str, database: str) -> dict[str, Any]: ...
    def delete_database(self, instance: str, database: str) -> dict[str, Any]: ...
    def create_database(self, instance: str, database: str) -> dict[str, Any]: ...
    def restore_backup_run(self, instance: str, backup_run_id: str) -> dict[str, Any]: ...
    def clone(self, instance: str, destination: str, point_in_time: str) -> dict[str, Any]: ...
    def delete_instance(self, instance: str) -> dict[str, Any]: ...
    def get_operation(self, name: str) -> dict[str, Any]: ...


class SqlOperationFailed(UserError):
    """A Cloud SQL operation finished with an error (or did not finish in time)."""


def _reason(resp: Any) -> str:
    try:
        err = resp.json().get("error", {})
    except ValueError:
        return f"HTTP {resp.status_code}"
    return f"{err.get('status', '')} {err.get('message', '')}".strip() or f"HTTP {resp.status_code}"


class RestSqlAdmin:
    """SQL Admin API v1 over an authorized HTTP session (google-auth's AuthorizedSession)."""

    def __init__(self, project: str, session: Any = None) -> None:
        self.project = project
        self._session = session

    def session(self) -> Any:
        if self._session is None:
            import google.auth
            from google.auth import exceptions as gexc
            from google.auth.transport.requests import AuthorizedSession

            try:
                creds, _ = google.auth.default(scopes=SCOPES)
            except gexc.DefaultCredentialsError:
                raise UserError(
                    "no Google Application Default Credentials found",
                    "run `gcloud auth application-default login`",
                ) from None
            self._session = AuthorizedSession(creds)  # type: ignore[no-untyped-call]
        return self._session

    def _url(self, path: str) -> str:
        return f"{SQLADMIN}/projects/{self.project}/{path}"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = self.session().request(method, self._url(path), json=body, timeout=60)
        if resp.status_code == 403:
            raise UserError(
                f"Cloud SQL refused {method} {path}: {_reason(resp)}",
                "you need roles/cloudsql.admin on the project",
            )
        if resp.status_code >= 300:
            raise SqlOperationFailed(f"Cloud SQL {method} {path} failed: {_reason(resp)}")
        return resp.json()

    def get_instance(self, instance: str) -> dict[str, Any]:
        data: dict[str, Any] = self._call("GET", f"instances/{instance}")
        return data

    def create_backup_run(self, instance: str, description: str) -> dict[str, Any]:
        op: dict[str, Any] = self._call(
            "POST", f"instances/{instance}/backupRuns", {"description": description}
        )
        return op

    def list_backup_runs(self, instance: str) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = []
        token = ""
        while True:  # the API may answer fewer than maxResults per page
            page = f"&pageToken={token}" if token else ""
            data = self._call("GET", f"instances/{instance}/backupRuns?maxResults=100{page}")
            runs += data.get("items") or []
            token = data.get("nextPageToken") or ""
            if not token:
                return runs

    def delete_backup_run(self, instance: str, backup_run_id: str) -> dict[str, Any]:
        op: dict[str, Any] = self._call(
            "DELETE", f"instances/{instance}/backupRuns/{backup_run_id}"
        )
        return op

    def list_instances(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            data = self._call(
                "GET", "instances?maxResults=500" + (f"&pageToken={token}" if token else "")
            )
            items += list(data.get("items") or [])
            token = str(data.get("nextPageToken") or "")
            if not token:
                return items

    def set_deletion_protection(self, instance: str, enabled: bool) -> dict[str, Any]:
        body = {"settings": {"deletionProtectionEnabled": enabled}}
        op: dict[str, Any] = self._call("PATCH", f"instances/{instance}", body)
        return op

    def export_sql(self, instance: str, uri: str, database: str) -> dict[str, Any]:
        body = {"exportContext": {"fileType": "SQL", "uri": uri, "databases": [database]}}
        op: dict[str, Any] = self._call("POST", f"instances/{instance}/export", body)
        return op

    def import_sql(self, instance: str, uri: str, database: str) -> dict[str, Any]:
        body = {"importContext": {"fileType": "SQL", "uri": uri, "database": database}}
        op: dict[str, Any] = self._call("POST", f"instances/{instance}/import", body)
        return op

    def delete_database(self, instance: str, database: str) -> dict[str, Any]:
        op: dict[str, Any] = self._call("DELETE", f"instances/{instance}/databases/{database}")
        return op

    def create_database(self, instance: str, database: str) -> dict[str, Any]:
        body = {"name": database, "charset": "utf8mb4", "collation": "utf8mb4_0900_ai_ci"}
        op: dict[str, Any] = self._call("POST", f"instances/{instance}/databases", body)
        return op

    def restore_backup_run(self, instance: str, backup_run_id: str) -> dict[str, Any]:
        body = {
            "restoreBackupContext": {
                "backupRunId": backup_run_id,
                "instanceId": instance,
                "project": self.project,
            }
        }
        op: dict[str, Any] = self._call("POST", f"instances/{instance}/restoreBackup", body)
        return op

    def clone(self, instance: str, destination: str, point_in_time: str) -> dict[str, Any]:
        body = {
            "cloneContext": {"destinationInstanceName": destination, "pointInTime": point_in_time}
        }
        op: dict[str, Any] = self._call("POST", f"instances/{instance}/clone", body)
        return op

    def delete_instance(self, instance: str) -> dict[str, Any]:
        op: dict[str, Any] = self._call("DELETE", f"instances/{instance}")
        return op

    def get_operation(self, name: str) -> dict[str, Any]:
        op: dict[str, Any] = self._call("GET", f"operations/{name}")
        return op


def wait(
    api: SqlAdmin,
    op: dict[str, Any],
    what: str,
    *,
    timeout: float = 3600,
    poll: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_poll: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Poll an operation until DONE; raise `SqlOperationFailed` naming `what` on an error."""
    start = clock()
    while op.get("status") != "DONE":
        if clock() - start > timeout:
            raise SqlOperationFailed(
                f"{what} did not finish in {int(timeout)}s (operation {op.get('name')})",
                "it may still be running: check `gcloud sql operations list`",
            )
        sleep(poll)
        op = api.get_operation(str(op["name"]))
        if on_poll is not None:
            on_poll(op)
    errors = (op.get("error") or {}).get("errors") or []
    if errors:
        detail = "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errors)
        raise SqlOperationFailed(f"{what} failed: {detail}")
    return op
