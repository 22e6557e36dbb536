"""A loopback HTTP server that answers as Google's REST APIs do, in front of the in-memory fakes.

The product's own client layers (`RestSqlAdmin`, `GcpSecretManager`) talk real HTTP to it, so
their URLs, request bodies and the mapping of HTTP errors are what the tests exercise. Each
request is matched against Google's discovery document (tests/fakes/discovery.py): a method
Google does not have answers 404, a body Google would refuse answers 400 INVALID_ARGUMENT with
Google's wording, and both are kept in `refused` so a test fails even when the product swallows
the error. Errors are Google's JSON error body; lists are paged (`page_size` per page, smaller
than the product asks for, as the API may answer); Cloud SQL work is a long-running operation.

    with GoogleRest(SqlAdminRoutes(fake_sql)) as server:
        api = RestSqlAdmin(project, session=server.session("https://sqladmin.googleapis.com"))
"""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from tests.fakes.discovery import check_body, find_method
from tests.fakes.google_clients import PROJECT_NUMBER, error_body


class ApiError(Exception):
    """What a route answers instead of 200: Google's code, status and message."""

    def __init__(self, code: int, status: str, message: str, reason: str = "") -> None:
        super().__init__(f"{code} {status}: {message}")
        self.code, self.status, self.message, self.reason = code, status, message, reason


Reply = tuple[int, dict[str, Any]]


class Routes:
    """One Google API: `api`/`version` name its discovery document; `handle` serves a method."""

    api = ""
    version = ""
    page_size = 2

    def handle(self, method_id: str, path: str, query: dict[str, str], body: Any) -> dict[str, Any]:
        raise NotImplementedError

    def page(
        self, items: list[Any], key: str, query: dict[str, str], size_param: str
    ) -> dict[str, Any]:
        """One page of `items`; the token is the index of the next item."""
        start = int(query.get("pageToken") or 0)
        size = min(int(query.get(size_param) or self.page_size), self.page_size)
        out: dict[str, Any] = {key: items[start : start + size]} if items[start:] else {}
        if start + size < len(items):
            out["nextPageToken"] = str(start + size)
        return out


class GoogleRest:
    """The server; `requests` is every (method id, path, body) it answered, `refused` the ones
    Google would refuse because of the request's shape (not because of the fake's state)."""

    def __init__(self, routes: Routes) -> None:
        self.routes = routes
        self.requests: list[tuple[str, str, Any]] = []
        self.refused: list[str] = []
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> GoogleRest:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def session(self, google_base: str) -> requests.Session:
        """A requests session (the AuthorizedSession face) that sends `google_base` URLs here."""
        return _Redirect(google_base.rstrip("/"), self.url)

    def _serve(self, verb: str, raw_path: str, raw_body: bytes) -> Reply:
        parts = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        r = self.routes
        mid = find_method(r.api, r.version, verb, parts.path)
        if mid is None:
            self.refused.append(f"no such method: {verb} {parts.path}")
            return 404, error_body(
                404, "NOT_FOUND", f"The requested URL {parts.path} was not found."
            )
        try:
            body = json.loads(raw_body) if raw_body else None
        except ValueError:
            self.refused.append(f"{mid}: body is not JSON")
            return 400, error_body(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        problems = check_body(r.api, r.version, mid, body)
        if problems:
            self.refused += [f"{mid}: {p}" for p in problems]
            return 400, error_body(
                400, "INVALID_ARGUMENT", f"Invalid JSON payload received. {'; '.join(problems)}"
            )
        with self.lock:
            self.requests.append((mid, parts.path, body))
            try:
                return 200, r.handle(mid, parts.path, query, body)
            except ApiError as e:
                return e.code, error_body(e.code, e.status, e.message, e.reason)
            except Exception as e:  # noqa: BLE001 - a fault of the fake: 500, and fail the test
                self.refused.append(f"{mid}: the fake raised {e!r}")
                return 500, error_body(500, "INTERNAL", "Internal error encountered.")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                code, body = server._serve(self.command, self.path, self.rfile.read(length))
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _any

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


class _Redirect(requests.Session):
    def __init__(self, google_base: str, local: str) -> None:
        super().__init__()
        self.google_base, self.local = google_base, local

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        text = url.decode() if isinstance(url, bytes) else url
        if not text.startswith(self.google_base + "/"):
            raise AssertionError(f"not a {self.google_base} URL: {text}")
        return super().request(method, self.local + text[len(self.google_base) :], *args, **kwargs)


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --------------------------------------------------------------------------- Cloud SQL Admin


class SqlAdminRoutes(Routes):
    """Cloud SQL Admin API v1 over `tests.fakes.sqladmin.FakeSqlAdmin`."""

    api, version = "sqladmin", "v1"

    def __init__(self, fake: Any) -> None:
        self.fake = fake

    def handle(self, method_id: str, path: str, query: dict[str, str], body: Any) -> dict[str, Any]:
        from tests.fakes.sqladmin import SqlApiError

        seg = path.strip("/").split("/")  # v1 projects P instances I ...
        if seg[2] != self.fake.project:
            raise ApiError(
                403,
                "PERMISSION_DENIED",
                "The client is not authorized to make this request.",
                "notAuthorized",
            )
        f = self.fake
        name = method_id.removeprefix("sql.")
        try:
            if name == "operations.get":
                return dict(f.get_operation(seg[4]))
            if name == "instances.list":
                return self.page(f.list_instances(), "items", query, "maxResults")
            inst = seg[4]
            if name == "instances.get":
                return dict(f.get_instance(inst))
            if name == "instances.patch":
                return dict(f.patch_instance(inst, body))
            if name == "instances.delete":
                return dict(f.delete_instance(inst))
            if name == "backupRuns.insert":
                return dict(f.create_backup_run(inst, body.get("description", "")))
            if name == "backupRuns.delete":
                return dict(f.delete_backup_run(inst, seg[6]))
            if name == "backupRuns.list":
                return self.page(f.list_backup_runs(inst), "items", query, "maxResults")
            if name == "instances.export":
                ctx = body["exportContext"]
                return dict(f.export_sql(inst, ctx["uri"], ctx["databases"][0]))
            if name == "instances.import":
                ctx = body["importContext"]
                return dict(f.import_sql(inst, ctx["uri"], ctx["database"]))
            if name == "databases.delete":
                return dict(f.delete_database(inst, seg[6]))
            if name == "databases.insert":
                return dict(f.create_database(inst, body["name"]))
            if name == "instances.restoreBackup":
                return dict(f.restore_backup_run(inst, body["restoreBackupContext"]["backupRunId"]))
            if name == "instances.clone":
                ctx = body["cloneContext"]
                return dict(f.clone(inst, ctx["destinationInstanceName"], ctx["pointInTime"]))
        except SqlApiError as e:
            raise ApiError(e.code, e.status, e.message, e.reason) from None
        raise ApiError(501, "UNIMPLEMENTED", f"the fake does not serve {method_id}")


_OPEN: list[GoogleRest] = []


def close_all() -> list[str]:
    """Stop every server `sql_over_http` started; what they refused."""
    refused = [r for s in _OPEN for r in s.refused]
    while _OPEN:
        _OPEN.pop().__exit__(None, None, None)
    return refused


def sql_over_http(fake: Any) -> Any:
    """The product's `RestSqlAdmin` talking HTTP to a server in front of `fake` (one per fake,
    stopped by the suite's autouse fixture at the end of the test)."""
    api = getattr(fake, "_over_http", None)
    if api is None or api._server not in _OPEN:
        server = GoogleRest(SqlAdminRoutes(fake)).__enter__()
        _OPEN.append(server)
        api = rest_sql_admin(server, fake.project)
        api._server = server
        fake._over_http = api
    return api


def rest_sql_admin(server: GoogleRest, project: str) -> Any:
    """The product's `RestSqlAdmin`, talking HTTP to `server`."""
    from zenml_gcp_gitops.ops.sqladmin import SQLADMIN, RestSqlAdmin

    return RestSqlAdmin(project, session=server.session(SQLADMIN.removesuffix("/v1")))


# --------------------------------------------------------------------------- Secret Manager


class SecretManagerRoutes(Routes):
    """Secret Manager v1 over `tests.fakes.gcp_secrets.FakeSecretManager`'s store. As the real
    API: `versions/latest` is the newest version created, whatever its state; a version that
    is not ENABLED cannot be accessed (FAILED_PRECONDITION); names carry the project number."""

    api, version = "secretmanager", "v1"

    def __init__(self, fake: Any) -> None:
        self.fake = fake

    def _vname(self, secret: str, number: int) -> str:
        return f"projects/{PROJECT_NUMBER}/secrets/{secret}/versions/{number}"

    def _version(self, secret: str, number: int, state: str) -> dict[str, Any]:
        out = {
            "name": self._vname(secret, number),
            "state": state,
            "createTime": rfc3339(self.fake.created[(secret, number)]),
        }
        if state == "DESTROYED":
            out["destroyTime"] = rfc3339(datetime.now(UTC))
        return out

    def _versions(self, secret: str) -> list[tuple[int, str, str]]:
        if secret not in self.fake.store:
            raise ApiError(
                404,
                "NOT_FOUND",
                f"Secret [projects/{PROJECT_NUMBER}/secrets/{secret}] not found or has no versions.",
            )
        return list(self.fake.store[secret])

    def _pick(self, secret: str, vid: str) -> tuple[int, str, str]:
        vs = self._versions(secret)
        if vid == "latest":
            if not vs:
                raise ApiError(
                    404,
                    "NOT_FOUND",
                    f"Secret [projects/{PROJECT_NUMBER}/secrets/{secret}] not found or has no versions.",
                )
            return max(vs)  # the newest created, whatever its state
        for v in vs:
            if str(v[0]) == vid:
                return v
        raise ApiError(
            404, "NOT_FOUND", f"Secret Version [{self._vname(secret, int(vid))}] not found."
        )

    def handle(self, method_id: str, path: str, query: dict[str, str], body: Any) -> dict[str, Any]:
        seg = path.strip("/").split("/")  # v1 projects P secrets S[:verb] versions V[:verb]
        if seg[2] not in (self.fake.project, PROJECT_NUMBER):
            raise ApiError(403, "PERMISSION_DENIED", "Permission denied on resource project.")
        name = method_id.removeprefix("secretmanager.projects.secrets.")
        f = self.fake
        if name == "create":
            sid = query.get("secretId", "")
            if not sid:
                raise ApiError(400, "INVALID_ARGUMENT", "secret_id is required")
            if sid in f.store:
                raise ApiError(
                    409,
                    "ALREADY_EXISTS",
                    f"Secret [projects/{PROJECT_NUMBER}/secrets/{sid}] already exists.",
                )
            f.store[sid] = []
            return {"name": f"projects/{PROJECT_NUMBER}/secrets/{sid}", **body}
        secret = seg[4].split(":")[0]
        if name == "addVersion":
            self._versions(secret)
            value = base64.b64decode(body["payload"]["data"]).decode()
            vs = f.store[secret]
            number = max((v[0] for v in vs), default=0) + 1
            vs.append((number, value, "ENABLED"))
            f.created[(secret, number)] = datetime.now(UTC)
            return self._version(secret, number, "ENABLED")
        if name == "versions.list":
            listed = sorted(self._versions(secret), reverse=True)  # newest first
            flt = query.get("filter", "")
            if flt not in ("", "state:ENABLED"):
                raise ApiError(400, "INVALID_ARGUMENT", f"the fake does not parse filter {flt!r}")
            if flt:
                listed = [v for v in listed if v[2] == "ENABLED"]
            return self._page_versions(secret, listed, query)
        vid = seg[6].split(":")[0]
        number, value, state = self._pick(secret, vid)
        if name == "versions.access":
            if state != "ENABLED":
                raise ApiError(
                    400,
                    "FAILED_PRECONDITION",
                    f"Secret Version [{self._vname(secret, number)}] is in {state} state.",
                )
            import google_crc32c

            data = value.encode()
            return {
                "name": self._vname(secret, number),
                "payload": {
                    "data": base64.b64encode(data).decode(),
                    "dataCrc32c": str(google_crc32c.value(data)),
                },
            }
        if name in ("versions.disable", "versions.destroy"):
            if state == "DESTROYED":
                raise ApiError(
                    400,
                    "FAILED_PRECONDITION",
                    f"Secret Version [{self._vname(secret, number)}] is in DESTROYED state.",
                )
            new = "DISABLED" if name == "versions.disable" else "DESTROYED"
            f._set(secret, number, new)
            return self._version(secret, number, new)
        if name == "versions.get":
            return self._version(secret, number, state)
        raise ApiError(501, "UNIMPLEMENTED", f"the fake does not serve {method_id}")

    def _page_versions(
        self, secret: str, listed: list[tuple[int, str, str]], query: dict[str, str]
    ) -> dict[str, Any]:
        """Pages whose token is the last number returned, so versions that change state between
        two pages (the caller destroys as it lists) are neither skipped nor repeated."""
        after = int(query.get("pageToken") or 1 << 30)
        rest = [v for v in listed if v[0] < after]
        size = min(int(query.get("pageSize") or self.page_size), self.page_size)
        out: dict[str, Any] = {"versions": [self._version(secret, n, s) for n, _, s in rest[:size]]}
        if len(rest) > size:
            out["nextPageToken"] = str(rest[size - 1][0])
        out["totalSize"] = len(listed)
        return out


def secret_manager(server: GoogleRest, project: str, labels: dict[str, str] | None = None) -> Any:
    """The product's `GcpSecretManager`, its typed client's REST transport pointed at `server`."""
    from google.auth.credentials import AnonymousCredentials

    from zenml_gcp_gitops.gcp.secrets import GcpSecretManager

    return GcpSecretManager(
        project,
        labels,
        endpoint=server.url,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
    )
