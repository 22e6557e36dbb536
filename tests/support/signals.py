"""Children that tests signal: their own session, SIGINT at its default, and state checks.

A test that sends SIGINT must not depend on how pytest was started: with SIGINT ignored
(`trap '' INT`, `nohup`, a background job) a child inherits SIG_IGN and Python then installs
no KeyboardInterrupt handler; under a terminal (`script`) a child in pytest's process group is
in the terminal's foreground group. `start()` sets all of that itself.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# exec the real command with SIGINT at its default (a plain Popen keeps an inherited SIG_IGN)
_EXEC_WITH_SIGINT_DEFAULT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)

SIGINT_BIT = 1 << (signal.SIGINT - 1)


def start(args: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """Start `args` in a new session (own process group, no controlling terminal), SIGINT default."""
    import sys

    return subprocess.Popen(
        [sys.executable, "-c", _EXEC_WITH_SIGINT_DEFAULT, *args], start_new_session=True, **kwargs
    )


def _status_mask(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def execed(pid: int) -> bool:
    """True once the launcher of `start` has become the command it starts."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False
    return argv[1:2] != [b"-c"] or _EXEC_WITH_SIGINT_DEFAULT.encode() not in argv


def catches_sigint(pid: int) -> bool:
    """True once the started command has a SIGINT handler (a Python: its interpreter is up)."""
    try:
        return execed(pid) and bool(_status_mask(pid, "SigCgt") & SIGINT_BIT)
    except FileNotFoundError:
        return False


def fifo_writer(fifo: Path) -> int | None:
    """The write end of `fifo` once some process has opened it for reading, else None: a
    non-blocking open for writing succeeds only then (ENXIO otherwise). Keep the descriptor
    open: the reader then blocks in read() until it is written to or closed."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        if e.errno == errno.ENXIO:
            return None
        raise


def wait_for(
    check: Callable[[], bool], proc: subprocess.Popen[Any], what: str, limit: float = 120
) -> None:
    """Poll a state (not a duration): fail early if the child exits first. `limit` only bounds a
    hang; it is no timing assumption (a loaded machine just takes longer to get there)."""
    deadline = time.monotonic() + limit
    while not check():
        if proc.poll() is not None:
            out = proc.communicate()
            raise AssertionError(f"the child exited ({proc.returncode}) before {what}: {out}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {limit:.0f} s")
        time.sleep(0.01)  # a polling interval, not a synchronisation


def stop(proc: subprocess.Popen[Any]) -> None:
    """Kill what is left of the child's process group (its own, see `start`)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
