"""The MLflow basic-auth config (`basic_auth.ini`), one shape for the cluster and the rehearsal.

MLflow keeps its users and permissions in the SQL database named by `database_uri`. In the
cluster that is a MySQL database of its own on Cloud SQL, so users survive restarts and every
replica sees the same ones; External Secrets renders this file from Secret Manager (the
placeholders are its template fields) and MLflow finds it through MLFLOW_AUTH_CONFIG_PATH.
The rehearsal writes the same file with real values, pointed at its own database.

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
