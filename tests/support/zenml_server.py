"""A real ZenML server for tests: uvicorn on a free loopback port, OAuth2 password auth.

    with running_zenml_server() as server:      # or start_zenml_server() / server.stop()
        server.url, server.username, server.password, server.config_path

`zenml login --local` runs without authentication, so it cannot test API keys; this starts
`uvicorn zenml.zen_server.zen_server_api:app` with the auth scheme, an auto-activated admin,
a SQLite store (or `store_url=` e.g. a MariaDB `mysql://…`) and its own ZENML_CONFIG_PATH in
a temp dir. It runs in its own process group and is stopped by PID, never by name.
Use one per test module or session: a cold start costs a few seconds (DB migrations).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ADMIN_USER = "admin"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ZenServer:
    url: str
    username: str
    password: str
    workdir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    _owns_workdir: bool = field(default=True)

    @property
    def config_path(self) -> Path:
        """A client config dir for this server's tests (never the user's)."""
        return self.workdir / "client-config"

    def client_env(self, **extra: str) -> dict[str, str]:
        """Environment for a subprocess client: private config, no analytics."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("ZENML_STORE_") and not k.startswith("ZENML_SERVER")
        }
        env.update(
            ZENML_CONFIG_PATH=str(self.config_path),
            ZENML_ANALYTICS_OPT_IN="false",
            ZENML_ENABLE_RICH_TRACEBACK="false",
            AUTO_OPEN_DASHBOARD="false",
        )
        env.update(extra)
        return env

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM the server's process group, then SIGKILL if it lingers."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def wait_healthy(url: str, proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"ZenML server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"ZenML server at {url} not healthy after {timeout}s")


def start_zenml_server(
    store_url: str | None = None,
    timeout: float = 120,
    workdir: Path | None = None,
    implicit_auth: bool = True,
    app: str = "zenml.zen_server.zen_server_api:app",
    extra_env: dict[str, str] | None = None,
    password: str | None = None,
) -> ZenServer:
    """Start a server and wait for /health; the caller must `stop()` it. Implicit connector
    auth is allowed, as the stack's server allows it (Workload Identity). `app` and
    `extra_env` start a variant (e.g. `tests.support.zenml_dying_app:app`); on an existing
    `workdir`, pass the admin `password` it was first started with."""
    owns = workdir is None
    wd = Path(tempfile.mkdtemp(prefix="zgg-zenml-server-")) if workdir is None else workdir
    (wd / "server-config").mkdir(parents=True, exist_ok=True)
    (wd / "client-config").mkdir(parents=True, exist_ok=True)
    port = free_port()
    password = password or "T3st-" + secrets.token_urlsafe(12)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ZENML_STORE_") and not k.startswith("ZENML_SERVER")
    }
    env.update(
        ZENML_SERVER="true",
        ZENML_CONFIG_PATH=str(wd / "server-config"),
        ZENML_LOCAL_STORES_PATH=str(wd / "stores"),
        ZENML_STORE_URL=store_url or f"sqlite:///{wd / 'zenml.db'}",
        ZENML_SERVER_AUTH_SCHEME="OAUTH2_PASSWORD_BEARER",
        ZENML_SERVER_AUTO_ACTIVATE="true",
        ZENML_SERVER_JWT_SECRET_KEY=secrets.token_hex(32),
        ZENML_SERVER_DEPLOYMENT_TYPE="other",
        ZENML_DEFAULT_USER_NAME=ADMIN_USER,
        ZENML_DEFAULT_USER_PASSWORD=password,
        ZENML_ANALYTICS_OPT_IN="false",
        ZENML_ENABLE_RICH_TRACEBACK="false",
        AUTO_OPEN_DASHBOARD="false",
        ZENML_ENABLE_IMPLICIT_AUTH_METHODS=str(implicit_auth).lower(),
        NO_GCE_CHECK="true",  # no metadata server here: implicit GCP auth fails at once
    )
    env.update(extra_env or {})  # may override the above (e.g. a metadata server on loopback)
    log_path = wd / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", app,
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(Path(__file__).resolve().parents[2]),  # `app` may be in tests.support
            start_new_session=True,  # its own process group, so stop() kills uvicorn's children
        )  # fmt: skip
    server = ZenServer(f"http://127.0.0.1:{port}", ADMIN_USER, password, wd, proc, log_path, owns)
    try:
        wait_healthy(server.url, proc, timeout)
    except Exception as e:  # noqa: BLE001 - whatever failed, the server log explains it
        tail = server.log_tail()
        server.stop()
        raise RuntimeError(f"{e}\n--- server log ---\n{tail}") from None
    return server


@dataclass
class MariaDB:
    """A throwaway MariaDB (`mariadbd`) on a loopback port that behaves like the Cloud SQL
    instance where the applications can tell: binary logging on (row format), the instance's
    database flags (config.SQL_DATABASE_FLAGS), TLS only, and application users with all
    rights on their own database and nothing else (no SUPER, no FILE). Root (no password,
    over the socket) stands for Pulumi creating databases and users."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes]
    tls: dict[str, Path]
    password: str = field(default_factory=lambda: "Db-" + secrets.token_urlsafe(12))

    def store_url(self, database: str = "zenml") -> str:
        # ZenML insists on a user and password in a MySQL URL
        return f"mysql://zenml:{self.password}@127.0.0.1:{self.port}/{database}"

    def zenml_env(self) -> dict[str, str]:
        """The TLS settings the cluster gives the ZenML server (argocd/values/zenml.yaml)."""
        return {
            "ZENML_STORE_SSL": "true",
            "ZENML_STORE_SSL_CA": self.tls["ca"].read_text(),
            "ZENML_STORE_SSL_VERIFY_SERVER_CERT": "false",
        }

    def root(self) -> Any:
        import pymysql

        return pymysql.connect(unix_socket=str(self.workdir / "mysql.sock"), user="root")

    def create_app_user(self, user: str, password: str, database: str) -> None:
        """What the program makes: the database, and a user with all on it, over TLS only."""
        conn = self.root()
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4")
                cur.execute(
                    f"CREATE USER IF NOT EXISTS '{user}'@'%%' IDENTIFIED BY %s REQUIRE SSL",
                    (password,),
                )
                cur.execute(f"GRANT ALL PRIVILEGES ON `{database}`.* TO '{user}'@'%'")
            conn.commit()
        finally:
            conn.close()

    def create_user(self) -> None:
        self.create_app_user("zenml", self.password, "zenml")

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        shutil.rmtree(self.workdir, ignore_errors=True)


def mariadb_available() -> bool:
    return bool(shutil.which("mariadbd") and shutil.which("mariadb-install-db"))


def start_mariadb(
    timeout: float = 60,
    tls: dict[str, Path] | None = None,
    flags: dict[str, str] | None = None,
) -> MariaDB:
    """Initialise a datadir and start `mariadbd` like the Cloud SQL instance (see `MariaDB`).
    `tls` ({"ca", "cert", "key"}) defaults to a fresh CA in the workdir; `flags` to the
    program's database flags."""
    from tests.support.cloudsql_tls import tls_files
    from zenml_gcp_gitops.config import SQL_DATABASE_FLAGS

    wd = Path(tempfile.mkdtemp(prefix="zgg-mariadb-"))
    tls = tls or tls_files(wd / "tls")
    flag_args = [
        f"--{k.replace('_', '-')}={v}"
        for k, v in (SQL_DATABASE_FLAGS if flags is None else flags).items()
    ]
    data = wd / "data"
    user = ["--user=root"] if os.geteuid() == 0 else []
    subprocess.run(
        ["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--skip-test-db",
         "--auth-root-authentication-method=normal", *user],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    port = free_port()
    with (wd / "mariadb.log").open("wb") as log:
        proc = subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={data}", f"--port={port}",
             "--bind-address=127.0.0.1", f"--socket={wd / 'mysql.sock'}",
             f"--pid-file={wd / 'mariadb.pid'}", "--skip-name-resolve",
             # point-in-time recovery needs binary logs: Cloud SQL keeps them in row format
             f"--log-bin={wd / 'binlog'}", "--binlog-format=ROW", "--server-id=1",
             f"--ssl-ca={tls['ca']}", f"--ssl-cert={tls['cert']}", f"--ssl-key={tls['key']}",
             "--require-secure-transport=ON",  # ssl_mode=ENCRYPTED_ONLY
             "--innodb-buffer-pool-size=64M", *flag_args, *user],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    db = MariaDB(port, wd, proc, tls)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            db.create_user()
            return db
        time.sleep(0.2)
    tail = (wd / "mariadb.log").read_text(errors="replace")[-2000:]
    db.stop()
    raise RuntimeError(f"mariadbd did not start on port {port}\n{tail}")


@contextlib.contextmanager
def running_zenml_server(store_url: str | None = None, timeout: float = 120) -> Iterator[ZenServer]:
    server = start_zenml_server(store_url=store_url, timeout=timeout)
    try:
        yield server
    finally:
        server.stop()
