"""MLflow on MySQL as the cluster runs it: the migration Job's script (taken from the rendered
GitOps tree) migrates the tracking and auth schemas once, then two MLflow servers (two
replicas) start on them without migrating, share users, survive a restart, and take a new
admin password on the next run of the Job.

The database is MariaDB set up like the Cloud SQL instance (tests/support/zenml_server.py):
binary logging, the program's database flags, TLS only with a CA the clients verify, users
with rights on their own database only. Only the address and the CA file path of the rendered
URLs are changed to this machine's; database names, users and TLS options are the cluster's.
"""

from __future__ import annotations

import base64
import configparser
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require
from tests.support.zenml_server import MariaDB, free_port, mariadb_available, start_mariadb

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

EXAMPLE = Path(__file__).resolve().parents[2] / "argocd" / "example"
DB_PASSWORD = "Gen3rAtedAlnum0123456789abcdefXY"  # like the generated ones: alphanumeric
ADMIN = {"username": "admin", "password": "AdminGen3rated0123456789abcdefXY"}


def _cluster_ini() -> str:
    """basic_auth.ini as the rendered ExternalSecret's template writes it."""
    from zenml_gcp_gitops.config import build_config
    from zenml_gcp_gitops.gitops.render import render
    from zenml_gcp_gitops.outputs import InfraOutputs

    cfg = build_config(EXAMPLE / "config.yaml")
    out = InfraOutputs.model_validate(json.loads((EXAMPLE / "outputs.json").read_text()))
    values = render(cfg, out).app("mlflow").manifest["spec"]["source"]["helm"]["valuesObject"]
    es = next(
        o
        for o in values["extraDeploy"]
        if o["kind"] == "ExternalSecret"
        and o["metadata"]["name"] == cfg.names.mlflow_auth_config_secret
    )
    # as the chart's tpl puts it out (tests/integration/test_charts.py runs the chart on it)
    return str(es["spec"]["target"]["template"]["data"]["basic_auth.ini"]).replace(
        '{{ "{{" }}', "{{"
    )


def _cluster_job() -> dict[str, Any]:
    """The migration Job's container as the rendered MLflow Application carries it."""
    from zenml_gcp_gitops.config import build_config
    from zenml_gcp_gitops.gitops.render import render
    from zenml_gcp_gitops.outputs import InfraOutputs

    cfg = build_config(EXAMPLE / "config.yaml")
    out = InfraOutputs.model_validate(json.loads((EXAMPLE / "outputs.json").read_text()))
    app = render(cfg, out).app("mlflow").manifest
    extra = app["spec"]["source"]["helm"]["valuesObject"]["extraDeploy"]
    (job,) = [o for o in extra if o["kind"] == "Job"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _tracking_uri(db: MariaDB, ca: Path) -> str:
    """The Job's MLFLOW_BACKEND_STORE_URI with the Secret's values and this machine's address."""
    from sqlalchemy.engine import make_url

    env = {e["name"]: e.get("value") for e in _cluster_job()["env"]}
    url = make_url(
        str(env["MLFLOW_BACKEND_STORE_URI"])
        .replace("$(MYSQL_USERNAME)", "mlflow")
        .replace("$(MYSQL_PWD)", DB_PASSWORD)
    )
    assert url.query["ssl_ca"] == "/etc/cloudsql/server-ca.pem"
    local = url.set(host="127.0.0.1", port=db.port, query={**url.query, "ssl_ca": str(ca)})
    return local.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def tls_mariadb() -> Iterator[tuple[MariaDB, dict[str, Path]]]:
    require(None if mariadb_available() else "mariadbd (apt-get install mariadb-server)")
    db = start_mariadb()
    try:  # what Pulumi creates: each database and its own user
        db.create_app_user("mlflow", DB_PASSWORD, "mlflow")
        for name in ("mlflow_auth", "mlflow_auth_plain", "mlflow_auth_next", "mlflow_auth_old"):
            db.create_app_user("mlflow_auth", DB_PASSWORD, name)
        yield db, db.tls
    finally:
        db.stop()


def _migrate(ini: Path, tracking: str) -> subprocess.CompletedProcess[str]:
    """What the migration Job runs: its command, its two variables."""
    job = _cluster_job()
    assert job["command"][:2] == ["python", "-c"]
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_BACKEND_STORE_URI": tracking}
    return subprocess.run([sys.executable, "-c", job["command"][2]], env=env,
                          capture_output=True, text=True, timeout=400)  # fmt: skip


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
    def __init__(self, ini: Path, workdir: Path, tracking: str | None = None) -> None:
        self.ini, self.workdir = ini, workdir
        self.tracking = tracking or f"sqlite:///{workdir / 'tracking.db'}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.launch()
        self.wait()

    def launch(self) -> None:
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
             "--backend-store-uri", self.tracking],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=self.workdir,
        )  # fmt: skip
        log.close()

    def wait(self) -> None:
        assert self.proc is not None
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


def _revisions(db: MariaDB) -> dict[str, str]:
    conn = db.root()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT version_num FROM mlflow.alembic_version")
            tracking = cur.fetchone()
            cur.execute("SELECT version_num FROM mlflow_auth.alembic_version_auth")
            auth = cur.fetchone()
    finally:
        conn.close()
    return {"tracking": tracking[0] if tracking else "", "auth": auth[0] if auth else ""}


def test_one_migration_run_then_two_replicas_share_users_and_restart(
    tls_mariadb: tuple[MariaDB, dict[str, Path]], tmp_path: Path
) -> None:
    import pymysql
    from mlflow.server.auth.db.utils import _get_alembic_config
    from mlflow.store.db.utils import _get_latest_schema_revision

    db, tls = tls_mariadb
    # the server takes encrypted connections only: MLflow working below means TLS is on
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(host="127.0.0.1", port=db.port, user="mlflow_auth",
                        password=DB_PASSWORD, database="mlflow_auth", connect_timeout=10)  # fmt: skip

    ini = _ini_for(db, tls["ca"], tmp_path)
    tracking = _tracking_uri(db, tls["ca"])
    # from empty: MLflow's tracking migrations (they create triggers: binary logging is on and
    # the user has no SUPER, so this needs the instance's flags) and the auth schema
    done = _migrate(ini, tracking)
    assert done.returncode == 0, done.stderr[-3000:]
    from alembic.script import ScriptDirectory

    auth_head = ScriptDirectory.from_config(_get_alembic_config("")).get_current_head()
    assert f"MLflow auth schema at {auth_head}" in done.stdout
    assert "created the MLflow admin account" in done.stdout
    assert _revisions(db) == {"tracking": _get_latest_schema_revision(), "auth": auth_head}

    first, second = _Mlflow(ini, tmp_path, tracking), _Mlflow(ini, tmp_path, tracking)
    try:
        first.launch()  # two replicas at once, as the Deployment starts them
        second.launch()
        first.wait()
        second.wait()
        for server in (first, second):  # neither migrated: the Job had done it
            assert "Creating initial MLflow database tables" not in server.log_tail()
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

        # a new admin password in Secret Manager: External Secrets renders a new ini, the
        # next sync runs the Job, and the running servers take the new one
        new_pw = "AdminRotated0123456789abcdefXYZ"
        ini.write_text(ini.read_text().replace(ADMIN["password"], new_pw))
        rotated = _migrate(ini, tracking)  # the next sync: only the password changes
        assert rotated.returncode == 0, rotated.stderr[-3000:]
        assert "set the MLflow admin password from the secret" in rotated.stdout
        assert "created" not in rotated.stdout
        assert second.call(ADMIN["username"], new_pw, SEARCH) is not None
        with pytest.raises(urllib.error.HTTPError) as old:
            second.call(ADMIN["username"], ADMIN["password"], SEARCH)
        assert old.value.code == 401
    finally:
        first.stop()
        second.stop()
    assert _revisions(db) == {"tracking": _get_latest_schema_revision(), "auth": auth_head}
    # the users are rows in MySQL, and nothing was written next to the server
    conn = db.root()
    with conn.cursor() as cur:
        cur.execute("SELECT username FROM mlflow_auth.users ORDER BY username")
        assert [r[0] for r in cur.fetchall()] == ["admin", "analyst"]
    conn.close()
    assert not list(tmp_path.glob("*.db"))


# MLflow's tracking migration that creates a trigger (the secrets tables), run alone from the
# revision before it: the full chain up to it would add a minute and prove nothing more.
TRIGGER_MIGRATION = ("bf29a5ff90ea", "1bd49d398cd23")
_ONE_MIGRATION = """\
import sys
from alembic import command
from mlflow.store.db.utils import _get_alembic_config
cfg = _get_alembic_config(sys.argv[1])
command.stamp(cfg, sys.argv[2])
command.upgrade(cfg, sys.argv[3])
print("migrated")
"""


def test_the_trigger_migration_fails_without_the_instance_flag(tmp_path: Path) -> None:
    """Binary logging on and no SUPER, as on Cloud SQL, with the flags the program set before
    (none): MLflow's trigger migration fails with error 1419. With the program's flags it
    passes (the whole chain, in the test above)."""
    require(None if mariadb_available() else "mariadbd (apt-get install mariadb-server)")
    db = start_mariadb(flags={})
    try:
        db.create_app_user("mlflow", DB_PASSWORD, "mlflow")
        done = subprocess.run(
            [sys.executable, "-c", _ONE_MIGRATION, _tracking_uri(db, db.tls["ca"]),
             *TRIGGER_MIGRATION],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        db.stop()
    assert done.returncode != 0
    assert "1419" in done.stderr and "SUPER privilege" in done.stderr


def test_without_the_job_mlflow_cannot_set_up_its_users_on_mysql(
    tls_mariadb: tuple[MariaDB, dict[str, Path]], tmp_path: Path
) -> None:
    """Why the Job renames a key: MLflow's own first auth migration, run by a server without
    the Job, fails on MySQL (two foreign keys named `fk_user_id` in one database)."""
    db, tls = tls_mariadb
    server = _Mlflow(_ini_for(db, tls["ca"], tmp_path, database="mlflow_auth_plain"), tmp_path)
    try:
        with pytest.raises(AssertionError, match=r"Duplicate key|errno: 121|1826"):
            server.start()
    finally:
        server.stop()


# A later MLflow auth migration, as the unreleased revision e6c5d2f7a8b9 on MLflow's main branch
# changes the user keys: each dropped by its upstream name, then made again with ON DELETE
# CASCADE under a new name. Written here; it is added to a copy of the installed migrations.
_LATER_REVISION = """\
from alembic import op
revision = "e6c5d2f7a8b9"
down_revision = "{head}"
branch_labels = depends_on = None
TABLES = ("experiment_permissions", "registered_model_permissions")
def upgrade():
    for table in TABLES:
        op.drop_constraint("fk_user_id", table, type_="foreignkey")
        op.create_foreign_key(f"fk_{{table}}_user_id_users", table, "users", ["user_id"], ["id"],
                              ondelete="CASCADE")
def downgrade():
    raise NotImplementedError
"""
# the Job's auth script as it is, run by an MLflow whose auth migrations end in that one
_WITH_LATER_MLFLOW = """\
import shutil, sys
from pathlib import Path
from mlflow.server.auth.db import utils
mig = Path(sys.argv[1])
shutil.copytree(utils._get_alembic_dir(), mig, ignore=shutil.ignore_patterns("__pycache__"))
(mig / "versions" / "e6c5d2f7a8b9_user_fks_cascade.py").write_text(sys.argv[2])
utils._get_alembic_dir = lambda: mig
exec(sys.argv[3])
"""


def _auth_migrate(ini: Path, workdir: Path, *, later: bool) -> subprocess.CompletedProcess[str]:
    """The auth part of the Job's script (its command starts with it), with the installed
    MLflow or with one that has the later migration."""
    from alembic.script import ScriptDirectory
    from mlflow.server.auth.db.utils import _get_alembic_config

    from zenml_gcp_gitops import mlflow_auth

    assert _cluster_job()["command"][2].startswith(mlflow_auth.AUTH_MIGRATE)
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(ini)}
    args = ["-c", mlflow_auth.AUTH_MIGRATE]
    if later:
        head = ScriptDirectory.from_config(_get_alembic_config("")).get_current_head()
        mig = workdir / "later-mlflow-auth-migrations"
        args = ["-c", _WITH_LATER_MLFLOW, str(mig), _LATER_REVISION.format(head=head),
                mlflow_auth.AUTH_MIGRATE]  # fmt: skip
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def _user_fks(db: MariaDB, database: str) -> dict[str, tuple[str, str]]:
    conn = db.root()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT TABLE_NAME, CONSTRAINT_NAME, DELETE_RULE"
                " FROM information_schema.REFERENTIAL_CONSTRAINTS"
                " WHERE CONSTRAINT_SCHEMA = %s AND REFERENCED_TABLE_NAME = 'users'"
                " AND TABLE_NAME IN ('experiment_permissions', 'registered_model_permissions')",
                (database,),
            )
            return {t: (name, rule) for t, name, rule in cur.fetchall()}
    finally:
        conn.close()


LATER_KEYS = {
    "experiment_permissions": ("fk_experiment_permissions_user_id_users", "CASCADE"),
    "registered_model_permissions": ("fk_registered_model_permissions_user_id_users", "CASCADE"),
}


def test_mlflow_creates_the_auth_schema_and_a_later_migration_drops_keys_by_upstream_name(
    tls_mariadb: tuple[MariaDB, dict[str, Path]], tmp_path: Path
) -> None:
    db, tls = tls_mariadb
    ini = _ini_for(db, tls["ca"], tmp_path, database="mlflow_auth_next")
    done = _auth_migrate(ini, tmp_path, later=False)
    assert done.returncode == 0, done.stderr[-3000:]
    # MLflow's own migrations made the tables: its names, but the one MySQL cannot hold twice
    assert _user_fks(db, "mlflow_auth_next") == {
        "experiment_permissions": ("fk_user_id", "RESTRICT"),
        "registered_model_permissions": ("fk_model_perm_user_id", "RESTRICT"),
    }
    upgraded = _auth_migrate(ini, tmp_path, later=True)
    assert upgraded.returncode == 0, upgraded.stderr[-3000:]
    assert "MLflow auth schema at e6c5d2f7a8b9" in upgraded.stdout
    assert _user_fks(db, "mlflow_auth_next") == LATER_KEYS
    renamed = "registered_model_permissions: foreign key fk_user_id is fk_model_perm_user_id"
    assert renamed in done.stdout and renamed in upgraded.stdout


# The auth tables as earlier releases of this project created them by hand on MySQL, before
# MLflow's migrations ran (they then recorded the first migration as done and applied the rest).
_EARLIER_TABLES = (
    "CREATE TABLE users (id INTEGER NOT NULL AUTO_INCREMENT, username VARCHAR(255),"
    " password_hash VARCHAR(255), is_admin BOOL, PRIMARY KEY (id), UNIQUE (username))",
    "CREATE TABLE experiment_permissions (id INTEGER NOT NULL AUTO_INCREMENT,"
    " experiment_id VARCHAR(255) NOT NULL, user_id INTEGER NOT NULL, permission VARCHAR(255),"
    " PRIMARY KEY (id), CONSTRAINT fk_user_id FOREIGN KEY(user_id) REFERENCES users (id),"
    " CONSTRAINT unique_experiment_user UNIQUE (experiment_id, user_id))",
    "CREATE TABLE registered_model_permissions (id INTEGER NOT NULL AUTO_INCREMENT,"
    " name VARCHAR(255) NOT NULL, user_id INTEGER NOT NULL, permission VARCHAR(255),"
    " PRIMARY KEY (id),"
    " CONSTRAINT fk_model_perm_user_id FOREIGN KEY(user_id) REFERENCES users (id),"
    " CONSTRAINT unique_name_user UNIQUE (name, user_id))",
    "INSERT INTO users (username, password_hash, is_admin) VALUES ('analyst', 'x', 0)",
    "INSERT INTO registered_model_permissions (name, user_id, permission) VALUES ('m', 1, 'EDIT')",
)


def test_a_database_set_up_by_an_earlier_release_takes_the_later_migration(
    tls_mariadb: tuple[MariaDB, dict[str, Path]], tmp_path: Path
) -> None:
    db, tls = tls_mariadb
    conn = db.root()
    with conn.cursor() as cur:
        cur.execute("USE mlflow_auth_old")
        for statement in _EARLIER_TABLES:
            cur.execute(statement)
    conn.commit()
    conn.close()
    ini = _ini_for(db, tls["ca"], tmp_path, database="mlflow_auth_old")
    done = _auth_migrate(ini, tmp_path, later=False)
    assert done.returncode == 0, done.stderr[-3000:]
    # the keys already have the names MLflow's migrations get through the Job: nothing to rename
    assert _user_fks(db, "mlflow_auth_old") == {
        "experiment_permissions": ("fk_user_id", "RESTRICT"),
        "registered_model_permissions": ("fk_model_perm_user_id", "RESTRICT"),
    }
    upgraded = _auth_migrate(ini, tmp_path, later=True)
    assert upgraded.returncode == 0, upgraded.stderr[-3000:]
    assert _user_fks(db, "mlflow_auth_old") == LATER_KEYS
    conn = db.root()
    with conn.cursor() as cur:  # the earlier rows are kept
        cur.execute("SELECT name, permission FROM mlflow_auth_old.registered_model_permissions")
        assert cur.fetchall() == (("m", "EDIT"),)
    conn.close()
