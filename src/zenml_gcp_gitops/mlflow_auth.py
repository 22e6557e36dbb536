"""The MLflow basic-auth config (`basic_auth.ini`), one shape for the cluster and the rehearsal.

MLflow keeps its users and permissions in the SQL database named by `database_uri`. In the
cluster that is a MySQL database of its own on Cloud SQL, so users survive restarts and every
replica sees the same ones; External Secrets renders this file from Secret Manager (the
placeholders are its template fields) and MLflow finds it through MLFLOW_AUTH_CONFIG_PATH.
The rehearsal writes the same file with real values, pointed at its own database.

MLflow's first auth migration names two foreign keys `fk_user_id`, which MySQL refuses (names
are unique per database; mlflow/mlflow#9642), so on MySQL the server cannot create its user
tables. `SCHEMA_BOOTSTRAP` runs first: on a MySQL database without users table it creates the
three tables of that first migration, the key of `experiment_permissions` named as upstream
names it (`fk_user_id`) and the other one `fk_model_perm_user_id`, with no migration record.
MLflow then treats the database as one made before it tracked migrations: it records the
first migration as done and applies the later ones. Anywhere else (SQLite, a database already
set up) it changes nothing.

`MIGRATE` is what the cluster runs once per sync of the MLflow app, before the servers start
(an Argo CD PreSync Job with the MLflow image): the bootstrap, MLflow's auth migrations, the
admin account (created, or its password set to the one in Secret Manager), then the tracking
schema (created on an empty database, else upgraded). The servers then find every schema at
its head and change nothing: two replicas never migrate at once.

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


# Run as `python -c SCHEMA_BOOTSTRAP` with MLFLOW_AUTH_CONFIG_PATH set; needs only SQLAlchemy
# and the database driver, both in the MLflow image.
SCHEMA_BOOTSTRAP = """\
import configparser, os
import sqlalchemy as sa
conf = configparser.ConfigParser()
conf.read(os.environ["MLFLOW_AUTH_CONFIG_PATH"])
engine = sa.create_engine(conf["mlflow"]["database_uri"])
if engine.dialect.name == "mysql" and not sa.inspect(engine).has_table("users"):
    md = sa.MetaData()
    sa.Table("users", md, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("username", sa.String(255)), sa.Column("password_hash", sa.String(255)),
             sa.Column("is_admin", sa.Boolean), sa.UniqueConstraint("username"))
    for table, key, unique, fk in (
        ("experiment_permissions", "experiment_id", "unique_experiment_user", "fk_user_id"),
        ("registered_model_permissions", "name", "unique_name_user", "fk_model_perm_user_id"),
    ):
        sa.Table(table, md, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column(key, sa.String(255), nullable=False),
                 sa.Column("user_id", sa.Integer, nullable=False),
                 sa.Column("permission", sa.String(255)),
                 sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=fk),
                 sa.UniqueConstraint(key, "user_id", name=unique))
    md.create_all(engine, checkfirst=True)
    print("created the MLflow auth tables")
engine.dispose()
"""


# Run as `python -c MIGRATE` with MLFLOW_AUTH_CONFIG_PATH and MLFLOW_BACKEND_STORE_URI set.
MIGRATE = (
    SCHEMA_BOOTSTRAP
    + """\
from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore
from mlflow.store.db import utils as tracking
m = conf["mlflow"]
auth = SqlAlchemyStore()
auth.init_db(m["database_uri"])
admin, password = m["admin_username"], m["admin_password"]
if not auth.has_user(admin):
    auth.create_user(admin, password, is_admin=True)
    print("created the MLflow admin account")
elif not auth.authenticate_user(admin, password):
    auth.update_user(admin, password=password)
    print("set the MLflow admin password from the secret")
auth.engine.dispose()
store = tracking.create_sqlalchemy_engine_with_retry(os.environ["MLFLOW_BACKEND_STORE_URI"])
if tracking._all_tables_exist(store):
    tracking._upgrade_db(store)
else:
    tracking._initialize_tables(store)
print("MLflow tracking schema at", tracking._get_schema_version(store))
store.dispose()
"""
)
