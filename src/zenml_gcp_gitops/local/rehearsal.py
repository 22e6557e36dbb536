"""`local up | down | status | env`: the stack's shape on loopback, with real services.

    local_up(name, data_dir, db_url, ...) -> dict     start, wait, create buckets, register, ci
    local_down(name, data_dir, purge) -> dict
    local_status(name, data_dir) -> dict

What a pipeline process needs of it (`local env`, `local run-example`) is in `pipeline_env.py`.

Layout of the data dir (`user_data_dir()/local/<name>` unless `--dir`):

    state.json              ports, PIDs (+ kernel start times), URLs; never a secret
    env                     shell lines for the pipeline environment (0600; the API key is
                            read from its file by `$(cat …)`, so even this file holds no key)
    credentials/            0600 files: ZenML admin, MLflow admin, CI API key, internal keys
    gcs/  mlflow/  zenml/  registry/   one per service: pid, log, data"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import Interrupted, UserError
from ..names import LocalNames
from ..progress import ServiceProgress
from ..ui import self_command
from . import services as sv
from .owned import check_purgeable, claim, marker_name
from .pipeline_env import pipeline_env, write_env_file
from .services import (
    BinaryMissing,
    LocalState,
    RunningService,
    ServiceSpec,
    choose_port,
    read_secret,
    write_secret,
)
from .specs import (
    Layout,
    _require_modules,
    create_buckets,
    default_dir,
    gcs_spec,
    mlflow_spec,
    registry_spec,
    zenml_spec,
)

SERVICE_ORDER = ("gcs", "mlflow", "zenml", "registry")


# -- up -------------------------------------------------------------------------------------------


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
    # Never move into a folder that is not ours (a later `down --purge` would delete it).
    # exist_ok: a second `up` on the same new dir may create it first; the lock decides
    claim(base, name)
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
    importer = threading.Thread(target=_import_zenml_client, daemon=True)
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
    # Registration needs only the ZenML server, so it starts the moment ZenML is ready,
    # while MLflow may still be starting; buckets right after the emulator.
    zenml_ready, abort, registering = threading.Event(), threading.Event(), threading.Event()
    with ServiceProgress(progress, _interactive()) as prog:
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

            timings: dict[str, float] = {}

            def on_ready(key: str, took: float) -> None:
                svc = started.get(key) or running[key]
                how = "already running" if key in running else f"ready in {took:.1f} s"
                if key == "gcs":
                    create_buckets(svc.url, [names.artifact_bucket, names.mlflow_bucket])
                prog.done(key, f"{svc.title} on {svc.url} ({how})")
                if key == "zenml":
                    zenml_ready.set()

            def register() -> dict[str, Any] | None:
                while not (zenml_ready.wait(0.1) or abort.is_set()):
                    pass
                if not zenml_ready.is_set():  # another service failed first: nothing to do
                    return None
                registering.set()
                prog.add("register", f"Registering stack {names.zenml_stack}")
                t_join = time.monotonic()
                importer.join()
                timings["import_wait"] = round(time.monotonic() - t_join, 2)
                result = _register(lay, names, state)
                prog.done("register", f"Stack {names.zenml_stack} registered")
                return result

            registration = _Background(register)
            try:
                ready_times = sv.wait_ready(pairs, on_ready=on_ready)
                services_s = time.monotonic() - t0
            finally:
                abort.set()  # no-op when ZenML was ready: registration goes on
            reg = registration.result()  # its error, if any, is raised here
            if reg is None:  # every service is ready; the registrar stopped before it saw ZenML
                registering.set()
                reg = _register(lay, names, state)
        except KeyboardInterrupt:
            abort.set()
            raise _interrupted(started, running, state, base, registering.is_set()) from None
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
        "register_seconds": {"import_wait": timings.get("import_wait"), **reg["seconds"]},
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


def _import_zenml_client() -> None:
    """Pre-import the ZenML client (~2-4 s of CPU) while the servers boot."""
    with contextlib.suppress(Exception):  # a failure surfaces in _register's own import
        import zenml.models
        import zenml.zen_stores.rest_zen_store  # noqa: F401

        from ..zenml import apply, ci_account, session  # noqa: F401


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


class _Background(threading.Thread):
    """A daemon thread with a result: Ctrl-C never waits for it (stopping the services it
    talks to ends its requests), and the process can exit while it still runs."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__(target=None, name="register", daemon=True)
        self._fn = fn
        self._value: Any = None
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller by result()
            self._error = e

    def result(self) -> Any:
        self.join()  # a lock wait: Ctrl-C interrupts it at once
        if self._error is not None:
            raise self._error
        return self._value


INTERRUPT_GRACE_S = 0.5  # SIGTERM, then SIGKILL: the databases are SQLite/MySQL, crash-safe


def _interrupted(
    started: dict[str, RunningService],
    running: dict[str, RunningService],
    state: LocalState,
    base: Path,
    registering: bool,
) -> Interrupted:
    """Ctrl-C: stop what this run started (all at once), and say what is left."""
    stuck = sv.stop_all(list(started.values()), grace=INTERRUPT_GRACE_S)
    stopped = [s for s in started.values() if s not in stuck]
    for key, svc in started.items():
        if svc not in stuck:
            state.services.pop(key, None)
    with contextlib.suppress(OSError):
        state.save(base)
    done = f"stopped what this run started ({', '.join(s.title for s in stopped) or 'nothing'})"
    left = [f"the data in {base}"]
    if stuck:
        left.append("still running, would not stop: " + ", ".join(
            f"{s.title} (process group {s.pid})" for s in stuck
        ))  # fmt: skip
    if running:
        left.append("running from before: " + ", ".join(s.title for s in running.values()))
    if registering:
        left.append("a registration cut short (what it created stays in ZenML's database)")
    return Interrupted(
        f"interrupted: {done}; left: {'; '.join(left)}",
        f"re-run `{self_command()} local up` with the same flags: it starts the services "
        "again and completes the registration",
    )


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


# -- down / status ----------------------------------------------------------------------------


def local_down(
    name: str = "zenml", data_dir: Path | None = None, purge: bool = False
) -> dict[str, Any]:
    """Stop every service (whole process groups); `purge` then deletes the data dir, but only
    a folder `local up` marked as this rehearsal's."""
    LocalNames(name)
    base = (data_dir or default_dir(name)).resolve()
    if purge and base.exists():
        check_purgeable(base, name)  # before anything is stopped or written
    if marker_name(base) is None and not (base / sv.STATE_FILE).is_file():
        # not a rehearsal: nothing to stop, and no lock file left behind in someone's folder
        return {"name": name, "dir": str(base), "stopped": [], "purged": False, "exists": False}
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
    return {"name": name, "dir": str(base), "stopped": stopped, "purged": False, "exists": True}


def local_status(name: str = "zenml", data_dir: Path | None = None) -> dict[str, Any]:
    LocalNames(name)
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
        # A killed leader's workers can live on in its group and keep answering on its port.
        left = [] if alive else svc.members()
        answers = bool(left) and sv.http_ok(svc.url + svc.health_path)
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
            "running": alive or bool(left),
            "healthy": alive and not stale and svc.healthy(),
            "log": svc.log,
        }
        if left:
            out[key]["leftover_pids"] = left
            out[key]["error"] = (
                f"its main process {svc.pid} is gone, but {len(left)} of its workers "
                f"{'still answer on' if answers else 'still hold'} port {svc.port}: run "
                "`zenml-gcp-gitops local up` (it stops them and starts the service again)"
            )
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
