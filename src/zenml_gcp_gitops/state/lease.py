"""The deploy lease: one deploy or destroy of a deployment at a time, across all phases.

The Pulumi lock covers only `pulumi up`; the lease covers the whole run (gitops, register
and ci included). It has two parts:

- an `fcntl` lock on a file next to the local record, held for the run (the kernel frees
  it when the process dies, so it can never go stale), plus `lease.json` naming the holder;
- for a gs:// state, `lease.json` next to the record in the bucket, created with
  `if_generation_match=0` (exactly one run can create it) and refreshed by a heartbeat.

A lease whose holder died (a dead PID on this host, or no heartbeat for `LEASE_TTL_S`) is
reported as such, with what `unlock` does; it is never taken over silently.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from ..errors import UserError

LEASE_FILE = "lease.json"
LEASE_TTL_S = 600.0  # no heartbeat for this long: the holder is gone
HEARTBEAT_S = 60.0


class LeaseHeld(UserError):
    """Another run of this deployment holds the lease."""

    exit_code = 3


class StaleLease(UserError):
    """A run died holding the lease; `unlock` clears it."""

    exit_code = 3


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _command() -> str:
    # the program and its subcommand only: flags may carry paths or names, never needed here
    args = [Path(sys.argv[0]).name, *[a for a in sys.argv[1:2] if not a.startswith("-")]]
    return " ".join(args) or "zenml-gcp-gitops"


@dataclass
class Holder:
    host: str
    pid: int
    started_at: str
    command: str
    heartbeat_at: str = ""

    @classmethod
    def me(cls, command: str | None = None) -> Holder:
        now = _now()
        return cls(socket.gethostname(), os.getpid(), now, command or _command(), now)

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        try:
            d = json.loads(text)
            return cls(
                str(d["host"]),
                int(d["pid"]),
                str(d["started_at"]),
                str(d.get("command", "?")),
                str(d.get("heartbeat_at") or d["started_at"]),
            )
        except (ValueError, KeyError, TypeError):
            return None

    def dumps(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def describe(self) -> str:
        return f"`{self.command}` on {self.host} (pid {self.pid}, since {self.started_at})"

    def is_mine(self) -> bool:
        return self.host == socket.gethostname() and self.pid == os.getpid()

    def dead(self, ttl: float = LEASE_TTL_S) -> str | None:
        """Why this holder is known to be gone, or None when it may still be running."""
        if self.host == socket.gethostname() and not _pid_alive(self.pid):
            return f"pid {self.pid} no longer runs on this host"
        try:
            beat = datetime.fromisoformat(self.heartbeat_at)
        except ValueError:
            return None
        age = (datetime.now(UTC) - beat).total_seconds()
        if age > ttl:
            return f"no heartbeat for {int(age // 60)} min"
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def held_error(name: str, holder: Holder | None, where: str) -> LeaseHeld:
    who = holder.describe() if holder else "another run"
    return LeaseHeld(
        f"another deploy or destroy of '{name}' is running: {who}",
        f"wait for it to finish (lease: {where})",
    )


def stale_error(name: str, holder: Holder, why: str, where: str) -> StaleLease:
    return StaleLease(
        f"the previous run of '{name}', {holder.describe()}, died without finishing ({why})",
        f"`zenml-gcp-gitops unlock` removes its lease ({where}) and any Pulumi state lock it "
        "left; then re-run, which resumes where it stopped",
    )


class DeployLease:
    """Held for the whole of one deploy/destroy. `remote` is the GCS side (or None)."""

    def __init__(
        self,
        name: str,
        local_dir: Path,
        remote: Any = None,
        command: str | None = None,
        ttl: float = LEASE_TTL_S,
        heartbeat: float = HEARTBEAT_S,
    ) -> None:
        self.name = name
        self.dir = local_dir
        self.remote = remote
        self.holder = Holder.me(command)
        self.ttl = ttl
        self.heartbeat = heartbeat
        self._fh: IO[str] | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self.remote_held = False
        self.previous: Holder | None = None  # a holder that died (file backend): for messages

    @property
    def lock_path(self) -> Path:
        return self.dir / "lease.lock"

    @property
    def info_path(self) -> Path:
        return self.dir / LEASE_FILE

    def acquire(self) -> DeployLease:
        import fcntl

        self.dir.mkdir(parents=True, exist_ok=True)
        fh = open(self.lock_path, "a")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            holder = self._read_local()
            raise held_error(self.name, holder, str(self.info_path)) from None
        self._fh = fh
        # The kernel freed the lock, so a holder still named here died (kill -9, power loss).
        left = self._read_local()
        if left is not None and not left.is_mine():
            self.previous = left
        self.info_path.write_text(self.holder.dumps())
        try:
            self.acquire_remote()
        except BaseException:
            self.release()
            raise
        return self

    def _read_local(self) -> Holder | None:
        try:
            return Holder.parse(self.info_path.read_text())
        except FileNotFoundError:
            return None

    def acquire_remote(self) -> bool:
        """Take the bucket side; False while the bucket does not exist yet (retried later)."""
        if self.remote is None or self.remote_held:
            return True
        status, current = self.remote.create(self.holder.dumps())
        if status == "no-bucket":
            return False
        if status == "exists":
            holder = Holder.parse(current or "")
            if holder is not None and (holder.host, holder.pid, holder.started_at) == (
                self.holder.host,
                self.holder.pid,
                self.holder.started_at,
            ):
                self.remote_held = True
                return True
            why = holder.dead(self.ttl) if holder is not None else "unreadable lease"
            if holder is not None and why is not None:
                raise stale_error(self.name, holder, why, self.remote.location)
            raise held_error(self.name, holder, self.remote.location)
        self.remote_held = True
        self._beat = threading.Thread(target=self._heartbeat, name="lease", daemon=True)
        self._beat.start()
        return True

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            self.holder.heartbeat_at = _now()
            with contextlib.suppress(Exception):  # a missed beat only shortens the TTL margin
                self.remote.refresh(self.holder.dumps())

    def release(self) -> None:
        import fcntl

        self._stop.set()
        if self._beat is not None:
            self._beat.join(5)
        if self.remote_held:
            with contextlib.suppress(Exception):
                self.remote.delete()
            self.remote_held = False
        if self._fh is not None:
            with contextlib.suppress(FileNotFoundError):
                if (h := self._read_local()) is not None and h.is_mine():
                    self.info_path.unlink()
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> DeployLease:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class GcsLease:
    """`lease.json` in the state bucket: created only if absent, refreshed and deleted only
    at the generation this run wrote."""

    def __init__(self, client: Any, bucket: str, blob: str) -> None:
        self.client = client
        self.bucket = bucket
        self.blob_name = blob
        self.location = f"gs://{bucket}/{blob}"
        self.generation: int | None = None

    def _blob(self) -> Any:
        return self.client.bucket(self.bucket).blob(self.blob_name)

    def create(self, text: str) -> tuple[str, str | None]:
        from google.api_core import exceptions as gexc

        blob = self._blob()
        try:
            blob.upload_from_string(text, content_type="application/json", if_generation_match=0)
        except gexc.NotFound:
            return "no-bucket", None
        except gexc.PreconditionFailed:
            return "exists", self.read()
        self.generation = blob.generation
        return "created", None

    def read(self) -> str | None:
        from google.api_core import exceptions as gexc

        try:
            return str(self._blob().download_as_text())
        except gexc.NotFound:
            return None

    def refresh(self, text: str) -> None:
        blob = self._blob()
        blob.upload_from_string(
            text, content_type="application/json", if_generation_match=self.generation
        )
        self.generation = blob.generation

    def delete(self) -> None:
        from google.api_core import exceptions as gexc

        with contextlib.suppress(gexc.NotFound, gexc.PreconditionFailed):
            self._blob().delete(if_generation_match=self.generation)

    def force_delete(self) -> bool:
        from google.api_core import exceptions as gexc

        try:
            self._blob().delete()
        except gexc.NotFound:
            return False
        return True


def leftover_leases(lease: DeployLease) -> list[tuple[str, Holder | None, Any]]:
    """(where, holder, remove) of the lease files a dead run left. Raises LeaseHeld when a
    run on this host is still holding the lease (unlock must not pull it from under it)."""
    import fcntl

    out: list[tuple[str, Holder | None, Any]] = []
    lease.dir.mkdir(parents=True, exist_ok=True)
    with open(lease.lock_path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise held_error(lease.name, lease._read_local(), str(lease.info_path)) from None
        fcntl.flock(fh, fcntl.LOCK_UN)
    if lease.info_path.exists():
        out.append(
            (str(lease.info_path), lease._read_local(), lambda: lease.info_path.unlink(True))
        )
    if lease.remote is not None:
        text = lease.remote.read()
        if text is not None:
            holder = Holder.parse(text)
            if holder is not None and holder.host == socket.gethostname() and not holder.dead():
                raise held_error(lease.name, holder, lease.remote.location)
            out.append((lease.remote.location, holder, lease.remote.force_delete))
    return out
