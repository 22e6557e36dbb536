"""MLflow's users and permissions in MySQL, as the cluster runs them: the basic_auth.ini that
External Secrets renders (taken from the rendered GitOps tree), TLS-only MariaDB standing in for
Cloud SQL, two MLflow servers sharing the database (two replicas), and a restart.

Only the address and the CA file path of the rendered database URL are changed to this
machine's; the database name, user, TLS options and every other setting are the cluster's.
"""

from __future__ import annotations

import base64
import configparser
import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require
from tests.support.zenml_server import MariaDB, free_port, mariadb_available, start_mariadb
from zenml_gcp_gitops import mlflow_auth

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

EXAMPLE = Path(__file__).resolve().parents[2] / "argocd" / "example"
DB_PASSWORD = "Gen3rAtedAlnum0123456789abcdefXY"  # like the generated ones: alphanumeric
ADMIN = {"username": "admin", "password": "AdminGen3rated0123456789abcdefXY"}


def _tls_files(d: Path) -> dict[str, Path]:
    """A CA and a server certificate that, like Cloud SQL's, names an instance, not the IP."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def cert(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(signer, hashes.SHA256())
        )

    ca_key, srv_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = cert("Test Cloud SQL Server CA", ca_key, "Test Cloud SQL Server CA", ca_key, True)
    srv = cert("acme-ml-prod:zenml-mysql", srv_key, "Test Cloud SQL Server CA", ca_key, False)
    files = {"ca": d / "server-ca.pem", "cert": d / "server-cert.pem", "key": d / "server-key.pem"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(srv.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        srv_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return files


def _cluster_ini() -> str:
    """basic_auth.ini as the rendered ExternalSecret's template writes it."""
    from zenml_gcp_gitops.config import build_config
    from zenml_gcp_gitops.gitops.render import render
    from zenml_gcp_gitops.outputs import InfraOutputs

    cfg = build_config(EXAMPLE / "config.yaml")
    out = InfraOutputs.model_validate(json.loads((EXAMPLE / "outputs.json").read_text()))
    r = render(cfg, out)
    es = next(
        o
        for o in r.objects
        if o["kind"] == "ExternalSecret"
        and o["metadata"]["name"] == cfg.names.mlflow_auth_config_secret
    )
    return str(es["spec"]["target"]["template"]["data"]["basic_auth.ini"])


@pytest.fixture(scope="module")
def tls_mariadb() -> Iterator[tuple[MariaDB, dict[str, Path]]]:
    require(None if mariadb_available() else "mariadbd (apt-get install mariadb-server)")
    certs = Path(tempfile.mkdtemp(prefix="zgg-sqltls-"))
    tls = _tls_files(certs)
    db = start_mariadb(tls=tls)
    try:
        import pymysql

        conn = pymysql.connect(unix_socket=str(db.workdir / "mysql.sock"), user="root")
        with conn.cursor() as cur:  # what Pulumi creates: the database and its own user
            cur.execute("CREATE USER 'mlflow_auth'@'%%' IDENTIFIED BY %s", (DB_PASSWORD,))
            for name in ("mlflow_auth", "mlflow_auth_plain"):
                cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
                cur.execute(f"GRANT ALL ON {name}.* TO 'mlflow_auth'@'%'")
        conn.commit()
        conn.close()
        yield db, tls
    finally:
        db.stop()
        for f in certs.iterdir():
            f.unlink()
        certs.rmdir()


def _ini_for(db: MariaDB, ca: Path, workdir: Path, database: str = "mlflow_auth") -> Path:
    from sqlalchemy.engine import make_url

    text = _cluster_ini()
    for field, value in (("db_password", DB_PASSWORD), ("admin_username", ADMIN["username"]),
                         ("admin_password", ADMIN["password"])):  # fmt: skip
        text = text.replace("{{ ." + field + " }}", value)
    conf = configparser.ConfigParser()
    conf.read_string(text)
    url = make_url(conf["mlflow"]["database_uri"])
    assert url.query["ssl_ca"] == "/etc/cloudsql/server-ca.pem"
    text = text.replace(f"@{url.host}:{url.port}/", f"@127.0.0.1:{db.port}/").replace(
        f"ssl_ca={url.query['ssl_ca']}", f"ssl_ca={ca}"
    )
    if database != url.database:
        text = text.replace(f"/{url.database}?", f"/{database}?")
        url = url.set(database=database)
    conf.read_string(text)
    local = make_url(conf["mlflow"]["database_uri"])
    assert local.set(host=url.host, port=url.port, query=url.query) == url  # nothing else
    path = workdir / f"{database}.ini"
    path.write_text(text)
    path.chmod(0o600)
    return path


class _Mlflow:
    def __init__(self, ini: Path, workdir: Path) -> None:
        self.ini, self.workdir = ini, workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
            "MLFLOW_AUTH_CONFIG_PATH": str(self.ini),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only-flask-key",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        log = (self.workdir / f"mlflow-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{self.workdir / 'tracking.db'}"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=self.workdir,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_tail()
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.url + "/health", timeout=2) as r,
            ):
                if r.status == 200:
                    return
            time.sleep(0.5)
        raise AssertionError(f"MLflow did not start\n{self.log_tail()}")

    def log_tail(self) -> str:
        logs = sorted(self.workdir.glob(f"mlflow-{self.port}.log"))
        return logs[0].read_text(errors="replace")[-3000:] if logs else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def call(self, user: str, password: str, path: str, body: Any = None) -> Any:
        req = urllib.request.Request(
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            method="GET" if body is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")


SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"


def test_users_live_in_the_mysql_auth_database_shared_by_replicas_and_restarts(
    tls_mariadb: tuple[MariaDB, dict[str, Path]], tmp_path: Path
) -> None:
    import pymysql

    db, tls = tls_mariadb
    # the server takes encrypted connections only: MLflow working below means TLS is on
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(host="127.0.0.1", port=db.port, user="mlflow_auth",
                        password=DB_PASSWORD, database="mlflow_auth", connect_timeout=10)  # fmt: skip

    ini = _ini_for(db, tls["ca"], tmp_path)
    # what the init container runs before MLflow (the same script, the same file)
    boot = [sys.executable, "-c", mlflow_auth.SCHEMA_BOOTSTRAP]
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(ini)}
    done = subprocess.run(boot, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "created the MLflow auth tables" in done.stdout
    again = subprocess.run(boot, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and again.stdout == ""  # set up once, then nothing to do
    first, second = _Mlflow(ini, tmp_path), _Mlflow(ini, tmp_path)
    try:
        first.start()  # applies the later auth migrations and creates the admin account
        second.start()
        first.call(ADMIN["username"], ADMIN["password"], "/api/2.0/mlflow/users/create",
                   {"username": "analyst", "password": "Analyst-pw-0123"})  # fmt: skip
        # the other replica knows the user at once: one database, nothing kept per pod
        assert second.call("analyst", "Analyst-pw-0123", SEARCH) is not None
        first.stop()
        first.start()
        assert first.call("analyst", "Analyst-pw-0123", SEARCH) is not None
        with pytest.raises(urllib.error.HTTPError) as bad:
            first.call("analyst", "wrong-password", SEARCH)
        assert bad.value.code == 401
    finally:
        first.stop()
        second.stop()
    # the users are rows in MySQL, and nothing was written next to the server
    conn = pymysql.connect(unix_socket=str(db.workdir / "mysql.sock"), user="root")
    with conn.cursor() as cur:
        cur.execute("SELECT username FROM mlflow_auth.users ORDER BY username")
        assert [r[0] for r in cur.fetchall()] == ["admin", "analyst"]
    conn.close()
    assert [p.name for p in tmp_path.glob("*.db")] == ["tracking.db"]


def test_without_the_bootstrap_mlflow_cannot_set_up_its_users_on_mysql(
    tls_mariadb: tuple[MariaDB, dict[str, Path]], tmp_path: Path
) -> None:
    """Why the bootstrap exists: MLflow's own first auth migration fails on MySQL."""
    db, tls = tls_mariadb
    server = _Mlflow(_ini_for(db, tls["ca"], tmp_path, database="mlflow_auth_plain"), tmp_path)
    try:
        with pytest.raises(AssertionError, match=r"Duplicate key|errno: 121|1826"):
            server.start()
    finally:
        server.stop()
