"""Managed background processes for the local rehearsal: start, readiness, stop, health.

Each service runs in its own session (so its process group holds every worker it forks),
writes its output to `<dir>/<service>/log` and its PID to `<dir>/<service>/pid`. We record
the leader's kernel start time next to the PID: a PID alone can be reused after a reboot or a
crash, and we must never signal a stranger's process.

Standard library only (plus rich for the progress display), so `status` and `down` are fast.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ServiceUnavailable, UserError

LOOPBACK = "127.0.0.1"
STATE_FILE = "state.json"
LOG_TAIL_LINES = 30


class PortInUse(UserError):
    """A port the user asked for (or that a service must bind) is taken."""


class BinaryMissing(UserError):
    """A program a service needs is not installed."""


# -- ports ------------------------------------------------------------------------------------


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Like the servers themselves, ignore TIME_WAIT leftovers: only a listener counts.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LOOPBACK, avoid: Iterable[int] = ()) -> int:
    """A port the kernel says is free now (the service binds it a moment later)."""
    taken = set(avoid)
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in taken:
            return port
    raise PortInUse("could not find a free loopback port")  # pragma: no cover - kernel says no


def choose_port(
    service: str, requested: int | None, recorded: int | None, avoid: Iterable[int] = ()
) -> int:
    """An explicit port must be free; else reuse the recorded one (stable URLs), else any."""
    avoid = set(avoid)
    if requested:
        if requested in avoid or not port_is_free(requested):
            raise PortInUse(
                f"port {requested} requested for the {service} is already in use",
                f"free it, or choose another with --{service.split()[0].lower()}-port "
                "(or omit the flag to pick a free port)",
            )
        return requested
    if recorded and recorded not in avoid and port_is_free(recorded):
        return recorded
    return free_port(avoid=avoid)


# -- process identity -------------------------------------------------------------------------


def proc_start_time(pid: int) -> int | None:
    """The kernel start time of `pid` in clock ticks (Linux), None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:  # pragma: no cover - non-Linux: fall back to "exists"
        return 0 if pid_exists(pid) else None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie has exited; only its parent's wait() is missing
        return None
    return int(fields[19])


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) PIDs whose process group is `pgid` (Linux /proc scan)."""
    out: list[int] = []
    proc = Path("/proc")
    if not proc.is_dir():  # pragma: no cover - non-Linux
        return [pgid] if pid_exists(pgid) else []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            out.append(int(entry.name))
    return out


# -- services -----------------------------------------------------------------------------------


@dataclass
class ServiceSpec:
    """How to start one service and how to tell that it is ready."""

    name: str  # short key: gcs, mlflow, zenml, registry
    title: str  # for humans: "GCS emulator"
    argv: list[str]
    port: int
    health_path: str  # GET http://127.0.0.1:<port><health_path> answers 200 when ready
    env: dict[str, str] = field(default_factory=dict)  # added to a clean copy of os.environ
    cwd: Path | None = None
    ready_timeout: float = 60.0
    depends: dict[str, str] = field(default_factory=dict)  # service -> URL it was started with

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


@dataclass
class RunningService:
    """What we record about a started service (no secrets: env is not recorded)."""

    name: str
    title: str
    pid: int
    start_time: int | None
    port: int
    url: str
    health_path: str
    log: str
    depends: dict[str, str] = field(default_factory=dict)  # the URLs it was started with

    def alive(self) -> bool:
        """True when the recorded leader is still the process we started."""
        now = proc_start_time(self.pid)
        return now is not None and (self.start_time is None or now == self.start_time)

    def members(self) -> list[int]:
        """Every live process of this service's group (workers included)."""
        if self.alive():
            return group_members(self.pid) or [self.pid]
        # Our leader is gone; its workers may linger in its group. Linux never hands out a
        # PID that is still some group's ID, so if a process holds that PID now, it is a
        # stranger (and so is its group): leave it alone.
        if proc_start_time(self.pid) is not None:
            return []
        return group_members(self.pid)

    def healthy(self, timeout: float = 2.0) -> bool:
        return self.alive() and http_ok(self.url + self.health_path, timeout=timeout)


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(200 <= resp.status < 300)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def service_dir(base: Path, name: str) -> Path:
    return base / name


def start(spec: ServiceSpec, base: Path) -> RunningService:
    """Start `spec` detached in a new session; its output goes to `<base>/<name>/log`."""
    sdir = service_dir(base, spec.name)
    sdir.mkdir(parents=True, exist_ok=True)
    log_path = sdir / "log"
    env = {**os.environ, **spec.env}
    with open(log_path, "ab") as log:
        log.write(f"\n--- start {time.strftime('%Y-%m-%dT%H:%M:%S')} port {spec.port}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=spec.cwd or sdir,
                start_new_session=True,  # own process group: `down` stops workers too
                close_fds=True,
            )
        except FileNotFoundError:
            raise BinaryMissing(
                f"cannot start the {spec.title}: {spec.argv[0]} is not installed",
                "pip install 'zenml-gcp-gitops[local]'",
            ) from None
    running = RunningService(
        name=spec.name,
        title=spec.title,
        pid=proc.pid,
        start_time=proc_start_time(proc.pid),
        port=spec.port,
        url=spec.url,
        health_path=spec.health_path,
        log=str(log_path),
        depends=dict(spec.depends),
    )
    (sdir / "pid").write_text(f"{proc.pid}\n")
    # Keep the Popen object alive so Python does not warn; it is reaped in wait_ready/stop.
    _POPENS[proc.pid] = proc
    return running


_POPENS: dict[int, subprocess.Popen[bytes]] = {}


def _exit_code(pid: int) -> int | None:
    proc = _POPENS.get(pid)
    return proc.poll() if proc is not None else None


def wait_ready(
    services: list[tuple[ServiceSpec, RunningService]],
    on_ready: Callable[[str, float], None] | None = None,
) -> dict[str, float]:
    """Wait for every service in parallel; return seconds-to-ready per service.

    Raises `ServiceUnavailable` naming the first service that exited or timed out, with the
    tail of its log in the message.
    """
    t0 = time.monotonic()
    abort = threading.Event()  # set on the first failure: the others stop polling at once

    def one(pair: tuple[ServiceSpec, RunningService]) -> float | None:
        spec, svc = pair
        deadline = t0 + spec.ready_timeout
        url = svc.url + spec.health_path
        delay = 0.05
        while not abort.is_set():
            code = _exit_code(svc.pid)
            if code is not None or (svc.pid not in _POPENS and not svc.alive()):
                raise _failed(svc, f"exited (code {code})" if code is not None else "exited")
            if http_ok(url, timeout=2.0):
                took = time.monotonic() - t0
                if on_ready:
                    on_ready(svc.name, took)
                return took
            if time.monotonic() > deadline:
                raise _failed(svc, f"was not ready after {spec.ready_timeout:.0f} s")
            abort.wait(delay)
            delay = min(delay * 1.5, 0.3)
        return None

    if not services:
        return {}
    times: dict[str, float] = {}
    with ThreadPoolExecutor(max_workers=len(services)) as pool:
        futures = {pool.submit(one, pair): pair[1].name for pair in services}
        for fut in as_completed(futures):
            try:
                took = fut.result()
            except BaseException:
                abort.set()
                raise
            if took is not None:
                times[futures[fut]] = took
    return times


def _failed(svc: RunningService, what: str) -> ServiceUnavailable:
    tail = log_tail(Path(svc.log))
    body = "\n".join(f"    {line}" for line in tail) or "    (empty)"
    return ServiceUnavailable(
        f"the {svc.title} {what} (port {svc.port}); last lines of {svc.log}:\n{body}",
        "fix the cause above and run `zenml-gcp-gitops local up` again",
    )


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode(errors="replace")
    except FileNotFoundError:
        return []
    return data.splitlines()[-lines:]


def stop(svc: RunningService, timeout: float = 20.0) -> bool:
    """SIGTERM the whole process group, wait, then SIGKILL what is left. True if stopped."""
    members = svc.members()
    if not members:
        _reap(svc.pid)
        return True
    _signal_group(svc, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(svc.pid)
        if not svc.members():
            return True
        time.sleep(0.1)
    _signal_group(svc, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        _reap(svc.pid)
        if not svc.members():
            return True
        time.sleep(0.1)
    return False


def _signal_group(svc: RunningService, sig: signal.Signals) -> None:
    if svc.alive():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(svc.pid, sig)
        return
    for pid in svc.members():  # leader gone: signal the verified stragglers one by one
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _reap(pid: int) -> None:
    proc = _POPENS.get(pid)
    if proc is not None:
        if proc.poll() is not None:
            _POPENS.pop(pid, None)
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


# -- state --------------------------------------------------------------------------------------


@dataclass
class LocalState:
    """`<dir>/state.json`: ports, PIDs and URLs of the rehearsal (never a secret)."""

    name: str
    services: dict[str, RunningService] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)  # last ports used, reused on restart
    info: dict[str, Any] = field(default_factory=dict)  # stack, URLs, credential file paths

    @classmethod
    def load(cls, base: Path) -> LocalState | None:
        path = base / STATE_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise UserError(
                f"{path} is not readable state ({e})",
                "stop leftover processes by hand and remove the file, or use another --dir",
            ) from None
        return cls(
            name=data["name"],
            services={k: RunningService(**v) for k, v in data.get("services", {}).items()},
            ports={k: int(v) for k, v in data.get("ports", {}).items()},
            info=data.get("info", {}),
        )

    def save(self, base: Path) -> None:
        base.mkdir(parents=True, exist_ok=True)
        data = {
            "name": self.name,
            "services": {k: asdict(v) for k, v in self.services.items()},
            "ports": self.ports,
            "info": self.info,
        }
        tmp = base / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(base / STATE_FILE)


@contextlib.contextmanager
def dir_lock(base: Path) -> Iterator[None]:
    """One `up`/`down` at a time per data dir (two would race for ports and PIDs)."""
    import fcntl

    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"another `local up` or `local down` is running on {base}",
                "wait for it to finish",
            ) from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_secret(path: Path, value: str) -> None:
    """Create or replace a 0600 file holding one secret (never world-readable, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    tmp.replace(path)


def read_secret(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.EACCES:
            raise UserError(f"cannot read {path}", "check the file's owner") from None
        raise
