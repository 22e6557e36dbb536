"""Managed background processes for the local rehearsal: start, readiness, stop, health.

Each service runs in its own session (so its process group holds every worker it forks),
writes its output to `<dir>/<service>/log` and its PID to `<dir>/<service>/pid`. We record
the leader's kernel start time next to the PID: a PID alone can be reused after a reboot or a
crash, and we must never signal a stranger's process.

Processes are identified and stopped through psutil; nothing heavy is imported, so `status`
and `down` are fast.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import stat
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

import psutil

from ..errors import ServiceUnavailable, UserError
from ..files import atomic_write
from ..polling import poll_until

LOOPBACK = "127.0.0.1"
STATE_FILE = "state.json"
STATE_MAX = 1 << 20  # a state file is a few kilobytes
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


def proc_start_time(pid: int) -> float | None:
    """When `pid` started (seconds since the epoch), None if it does not exist or has exited.

    With the PID it identifies a process: a PID alone can be reused by a stranger.
    """
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:  # exited; only its parent's wait() is missing
            return None
        return proc.create_time()
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:  # pragma: no cover - /proc hidden: fall back to "exists"
        return 0.0


def _legacy_start_time(ticks: int) -> float:
    """Older state files recorded the kernel's start time in clock ticks since boot."""
    return psutil.boot_time() + ticks / os.sysconf("SC_CLK_TCK")


def same_start(a: float, b: float) -> bool:
    return abs(a - b) < 0.02  # the kernel counts in clock ticks (10 ms)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) PIDs whose process group is `pgid`."""
    out: list[int] = []
    for proc in psutil.process_iter(["status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(proc.pid) == pgid:
                out.append(proc.pid)
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
    start_time: float | None
    port: int
    url: str
    health_path: str
    log: str
    depends: dict[str, str] = field(default_factory=dict)  # the URLs it was started with

    def alive(self) -> bool:
        """True when the recorded leader is still the process we started."""
        now = proc_start_time(self.pid)
        return now is not None and (self.start_time is None or same_start(now, self.start_time))

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

    class Aborted(Exception):
        """Another service failed: stop waiting for this one."""

    def one(pair: tuple[ServiceSpec, RunningService]) -> float | None:
        spec, svc = pair
        url = svc.url + spec.health_path

        def ready() -> float | None:
            if abort.is_set():
                raise Aborted
            code = _exit_code(svc.pid)
            if code is not None or (svc.pid not in _POPENS and not svc.alive()):
                raise _failed(svc, f"exited (code {code})" if code is not None else "exited")
            return time.monotonic() - t0 if http_ok(url, timeout=2.0) else None

        try:
            took = poll_until(
                ready,
                timeout=spec.ready_timeout - (time.monotonic() - t0),
                interval=0.05,
                max_interval=0.3,
                sleep=abort.wait,  # wakes at once when another service fails
                on_timeout=lambda: _failed(svc, f"was not ready after {spec.ready_timeout:.0f} s"),
            )
        except Aborted:
            return None
        if on_ready:
            on_ready(svc.name, took)
        return took

    if not services:
        return {}
    times: dict[str, float] = {}
    pool = ThreadPoolExecutor(max_workers=len(services))
    try:
        futures = {pool.submit(one, pair): pair[1].name for pair in services}
        for fut in as_completed(futures):
            took = fut.result()
            if took is not None:
                times[futures[fut]] = took
    except BaseException:
        abort.set()  # the pollers stop at their next check; Ctrl-C does not wait for them
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
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
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not svc.members():
            _reap(svc.pid)
            return True
        _signal_group(svc, sig)
        deadline = time.monotonic() + wait
        # psutil waits for (and reaps) each member; a worker forked meanwhile is seen next turn
        while (members := svc.members()) and (left := deadline - time.monotonic()) > 0:
            psutil.wait_procs(_processes(members), timeout=min(left, 1.0))
            _reap(svc.pid)
    _reap(svc.pid)
    return not svc.members()


def stop_all(svcs: list[RunningService], grace: float) -> list[RunningService]:
    """Stop several services at once (after Ctrl-C: no waiting for one after another).

    SIGTERM to every group, SIGKILL to what is left after `grace` seconds; returns the
    services that still have processes after that (their groups' IDs are in the report)."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        left = [s for s in svcs if s.members()]
        for svc in left:
            _signal_group(svc, sig)
        deadline = time.monotonic() + wait
        while left and (rest := deadline - time.monotonic()) > 0:
            members = [p for s in left for p in s.members()]
            psutil.wait_procs(_processes(members), timeout=min(rest, 0.1))
            for svc in left:
                _reap(svc.pid)
            left = [s for s in left if s.members()]
        if not left:
            return []
    return [s for s in svcs if s.members()]


def _processes(pids: list[int]) -> list[psutil.Process]:
    out = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            out.append(psutil.Process(pid))
    return out


def _signal_group(svc: RunningService, sig: signal.Signals) -> None:
    if svc.alive():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(svc.pid, sig)
        return
    for proc in _processes(svc.members()):  # leader gone: signal the verified stragglers
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(sig)


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
            if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block, a device not end
                raise ValueError("not a regular file")
            with path.open("rb") as f:
                raw = f.read(STATE_MAX + 1)
            if len(raw) > STATE_MAX:
                raise ValueError(f"larger than {STATE_MAX >> 20} MiB")
            data = json.loads(raw)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            from ..errors import echo_path

            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)[:120]
            raise UserError(
                f"{echo_path(path)} is not readable state ({why})",
                "stop leftover processes by hand and remove the file, or use another --dir",
            ) from None
        return cls(
            name=data["name"],
            services={k: _running(v) for k, v in data.get("services", {}).items()},
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
        atomic_write(base / STATE_FILE, json.dumps(data, indent=2) + "\n")


def _running(data: dict[str, Any]) -> RunningService:
    if isinstance(data.get("start_time"), int):
        data = {**data, "start_time": _legacy_start_time(data["start_time"])}
    return RunningService(**data)


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
    atomic_write(path, value + "\n", mode=0o600)


def read_secret(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.EACCES:
            raise UserError(f"cannot read {path}", "check the file's owner") from None
        raise
