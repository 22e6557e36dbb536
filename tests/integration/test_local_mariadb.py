"""`local up --db mysql://…`: the ZenML server on a private MariaDB instead of SQLite.

Needs `mariadbd` and `mariadb-install-db` (Debian: mariadb-server): skipped without them,
failing under CI=true.
The MariaDB server is our own: a temp datadir, a free loopback port, no socket shared with a
system instance, stopped by PID at teardown.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require
from zenml_gcp_gitops.local import services as sv

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

CLI = [sys.executable, "-c", "from zenml_gcp_gitops.cli import main; main()", "local"]


def _bin(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server, install = _bin("mariadbd"), _bin("mariadb-install-db")
    client = _bin("mariadb")
    require(None if server and install and client else "mariadbd (apt-get install mariadb-server)")
    assert server and install and client
    base = tmp_path_factory.mktemp("mariadb")
    data, sock = base / "data", base / "mysqld.sock"
    user = ["--user=root"] if os.geteuid() == 0 else []
    subprocess.run(
        [install, f"--datadir={data}", "--auth-root-authentication-method=socket",
         "--skip-test-db", *user],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    port = sv.free_port()
    log = open(base / "log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [server, "--no-defaults", f"--datadir={data}", f"--socket={sock}", f"--port={port}",
         "--bind-address=127.0.0.1", "--skip-name-resolve", "--innodb-buffer-pool-size=64M",
         f"--pid-file={base / 'pid'}", *user],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not sock.exists():
            assert proc.poll() is None, (base / "log").read_text()[-2000:]
            assert time.monotonic() < deadline, "MariaDB did not start"
            time.sleep(0.2)
        password = "Db-" + secrets.token_hex(8)
        sql = (
            "CREATE DATABASE zenml; "
            f"CREATE USER 'zenml'@'127.0.0.1' IDENTIFIED BY '{password}'; "
            "GRANT ALL ON zenml.* TO 'zenml'@'127.0.0.1';"
        )
        for _ in range(50):
            r = subprocess.run([client, f"--socket={sock}", "-uroot", "-e", sql],
                               capture_output=True, text=True, timeout=30)  # fmt: skip
            if r.returncode == 0:
                break
            time.sleep(0.2)
        assert r.returncode == 0, r.stderr
        yield f"mysql://zenml:{password}@127.0.0.1:{port}/zenml"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def test_up_on_mariadb_registers_and_keeps_the_password_out_of_output(
    mariadb: str, tmp_path: Path
) -> None:
    base = tmp_path / "data"
    d = ["--name", "maria", "--dir", str(base)]
    password = mariadb.split(":")[2].split("@")[0]
    try:
        proc = subprocess.run([*CLI, "up", "--no-registry", *d, "--db", mariadb, "-o", "json"],
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-4000:]
        result = json.loads(proc.stdout)
        assert result["db"] == mariadb.replace(password, "[secret]")
        assert result["register"]["stack"]["name"] == "maria-local"
        for text in (proc.stdout, proc.stderr, (base / "state.json").read_text()):
            assert password not in text
        # Remembered (0600) for the next `up` without --db.
        assert (base / "credentials" / "zenml-db-url").read_text().strip() == mariadb
        # And really on MariaDB: the server's tables are there, not in a SQLite file.
        assert not (base / "zenml" / "zenml.db").exists()
        again = subprocess.run([*CLI, "up", "--no-registry", *d, "-o", "json"], capture_output=True, text=True,
                               timeout=120)  # fmt: skip
        assert again.returncode == 0, again.stderr[-3000:]
        assert json.loads(again.stdout)["changed"] is False
        other = subprocess.run(
            [*CLI, "up", "--no-registry", *d, "--db", mariadb.replace("/zenml", "/other")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert other.returncode == 1
        assert "already running on another database" in other.stderr
    finally:
        subprocess.run([*CLI, "down", *d], capture_output=True, timeout=120)
    state = sv.LocalState.load(base)
    assert state is not None and state.services == {}
