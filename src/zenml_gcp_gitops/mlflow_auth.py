"""The MLflow basic-auth config (`basic_auth.ini`), one shape for the cluster and the rehearsal.

MLflow keeps its users and permissions in the SQL database named by `database_uri`. In the
cluster that is a MySQL database of its own on Cloud SQL, so users survive restarts and every
replica sees the same ones; External Secrets renders this file from Secret Manager (the
placeholders are its template fields) and MLflow finds it through MLFLOW_AUTH_CONFIG_PATH.
The rehearsal writes the same file with real values, pointed at its own database.

MLflow creates and upgrades the auth tables itself, with its own migrations and names, but
on MySQL one name cannot be kept: MySQL names foreign keys per database, and MLflow's first
auth migration names two of them `fk_user_id` (mlflow/mlflow#9642). Where the migrations run
(`AUTH_MIGRATE`), the key of `registered_model_permissions` is called `fk_model_perm_user_id`
on MySQL in every statement that names it: creating the table, adding or dropping the key.
So a later MLflow migration that drops or replaces `fk_user_id` on that table by upstream's
name applies here as it does upstream. Databases set up by earlier releases of this project
already carry that name (their tables were created by hand with it), so they need no rename.
On SQLite nothing is changed.

`MIGRATE` is what the cluster runs once per sync of the MLflow app, before the servers start
(an Argo CD Sync-hook Job with the MLflow image, in the sync wave before the chart's objects): MLflow's auth migrations, the admin account
(created, or its password set to the one in Secret Manager), then the tracking schema
(created on an empty database, else upgraded). The servers then find every schema at its head
and change nothing: two replicas never migrate at once.

The file is read with `configparser`, where `%` starts an interpolation: the generated
passwords are alphanumeric, and `%` in any value is doubled here.
"""

from __future__ import annotations

from urllib.parse import quote

CONFIG_FILE = "basic_auth.ini"
MOUNT_DIR = "/etc/mlflow/auth"
CONFIG_PATH = f"{MOUNT_DIR}/{CONFIG_FILE}"
AUTH_FUNCTION = "mlflow.server.auth:authenticate_request_basic_auth"
DEFAULT_PERMISSION = "READ"

# External Secrets template fields (Go templates) of the cluster's ini
TEMPLATE_FIELDS = {
    "db_password": "{{ .db_password }}",
    "admin_username": "{{ .admin_username }}",
    "admin_password": "{{ .admin_password }}",
}


def mysql_uri(
    user: str, password: str, host: str, port: int, database: str, ca_file: str | None = None
) -> str:
    """A SQLAlchemy URL for PyMySQL. With `ca_file` the connection is TLS, verified against
    that CA; Cloud SQL's server certificate names the instance, not the IP, so the host
    name is not checked (as for the tracking store)."""
    pw = password if password.startswith("{{") else quote(password, safe="")
    url = f"mysql+pymysql://{quote(user, safe='')}:{pw}@{host}:{port}/{database}"
    if ca_file:
        url += f"?ssl_ca={ca_file}&ssl_check_hostname=false"
    return url


def _ini_value(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("an MLflow auth setting cannot span lines")
    return value.replace("%", "%%")


def auth_ini(
    *,
    database_uri: str,
    admin_username: str,
    admin_password: str,
    default_permission: str = DEFAULT_PERMISSION,
) -> str:
    """The text of `basic_auth.ini`. The admin account is created on the first start against
    an empty user database; later starts leave existing users alone."""
    lines = [
        "[mlflow]",
        f"default_permission = {_ini_value(default_permission)}",
        f"database_uri = {_ini_value(database_uri)}",
        f"admin_username = {_ini_value(admin_username)}",
        f"admin_password = {_ini_value(admin_password)}",
        f"authorization_function = {AUTH_FUNCTION}",
    ]
    return "\n".join(lines) + "\n"


# MySQL only: upstream's name of a foreign key, by table, and the name it has here.
MYSQL_FK_NAMES = {"registered_model_permissions": ("fk_user_id", "fk_model_perm_user_id")}

# Run as `python -c AUTH_MIGRATE` with MLFLOW_AUTH_CONFIG_PATH set: MLflow's auth migrations
# (every statement of this process passes the renaming hook), then the admin account.
AUTH_MIGRATE = (
    "import configparser, os, re\n"
    "import sqlalchemy as sa\n"
    f"FK_NAMES = {MYSQL_FK_NAMES!r}\n"
    + r"""def mysql_fk_names(conn, cursor, statement, params, context, many):
    table = re.match(r"\s*(?:CREATE|ALTER) TABLE (?:IF NOT EXISTS )?`?(\w+)", statement)
    if conn.dialect.name == "mysql" and table and table[1] in FK_NAMES:
        upstream, here = FK_NAMES[table[1]]
        named = rf"\b(CONSTRAINT|DROP FOREIGN KEY) (`?){upstream}\2(?!\w)"
        if re.search(named, statement):
            statement = re.sub(named, rf"\1 \g<2>{here}\2", statement)
            print(f"{table[1]}: foreign key {upstream} is {here} on MySQL")
    return statement, params
sa.event.listen(sa.engine.Engine, "before_cursor_execute", mysql_fk_names, retval=True)
conf = configparser.ConfigParser()
conf.read(os.environ["MLFLOW_AUTH_CONFIG_PATH"])
from alembic.migration import MigrationContext
from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore
m = conf["mlflow"]
auth = SqlAlchemyStore()
auth.init_db(m["database_uri"])
with auth.engine.connect() as conn:
    ctx = MigrationContext.configure(conn, opts={"version_table": "alembic_version_auth"})
    print("MLflow auth schema at", ctx.get_current_revision())
admin, password = m["admin_username"], m["admin_password"]
if not auth.has_user(admin):
    auth.create_user(admin, password, is_admin=True)
    print("created the MLflow admin account")
elif not auth.authenticate_user(admin, password):
    auth.update_user(admin, password=password)
    print("set the MLflow admin password from the secret")
auth.engine.dispose()
"""
)


# Run as `python -c MIGRATE` with MLFLOW_AUTH_CONFIG_PATH and MLFLOW_BACKEND_STORE_URI set.
MIGRATE = (
    AUTH_MIGRATE
    + """\
from mlflow.store.db import utils as tracking
store = tracking.create_sqlalchemy_engine_with_retry(os.environ["MLFLOW_BACKEND_STORE_URI"])
if tracking._all_tables_exist(store):
    tracking._upgrade_db(store)
else:
    tracking._initialize_tables(store)
print("MLflow tracking schema at", tracking._get_schema_version(store))
store.dispose()
"""
)
