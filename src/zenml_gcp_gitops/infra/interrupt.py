"""Ctrl-C during a Pulumi operation: forwarded to the engine, which stops cleanly.

The operation runs in a worker thread so the main thread can take the signal; Pulumi's
`cancel` does not work on self-managed backends, so SIGINT is the clean way to stop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

import psutil

from ..errors import Interrupted

if TYPE_CHECKING:
    from ..phases.base import Reporter


# --------------------------------------------------------------------------- interrupts


def _pulumi_children(before: set[int]) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process().children(recursive=False) if p.pid not in before]
    except psutil.Error:
        return []


def _child_pids() -> set[int]:
    try:
        return {p.pid for p in psutil.Process().children(recursive=False)}
    except psutil.Error:
        return set()


def _terminal_delivered_sigint() -> bool:
    """True when Ctrl-C on our terminal already reached the CLI (same foreground group)."""
    try:
        fd = os.open("/dev/tty", os.O_RDONLY)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(fd)


def run_interruptible(
    fn: Callable[[], Any], reporter: Reporter, stop: threading.Event | None = None
) -> Any:
    """Run a Pulumi operation in a worker thread so Ctrl-C can be forwarded to the engine.

    The engine stops after in-flight resource operations and releases the lock; we then raise
    Interrupted so the phase is recorded as such. Pulumi's `cancel` does not work on
    self-managed backends, so SIGINT is the clean way to stop. `stop`, once set (the other
    line of work of an overlapped deploy failed), stops the engine the same way.
    """
    # The inline program's language host runs in this process; when a resource fails, grpc
    # logs the program's exception as a traceback. The summary says it better.
    logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
    if threading.current_thread() is not threading.main_thread():
        return fn()
    before = _child_pids()
    interrupted = threading.Event()
    stopped = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        first = not interrupted.is_set()
        interrupted.set()
        reporter.step(
            "Interrupt received: waiting for Pulumi to stop cleanly (it keeps the state consistent)"
        )
        if first and _terminal_delivered_sigint():
            return  # the CLI got the same Ctrl-C from the terminal
        for child in _pulumi_children(before):
            with contextlib.suppress(psutil.Error):
                child.send_signal(signal.SIGINT)

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pulumi-op")
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        future = pool.submit(fn)
        # short waits keep the main thread free to run the handler above
        while not wait([future], timeout=0.1).done:
            if stop is not None and stop.is_set() and not stopped.is_set():
                stopped.set()
                reporter.step("Stopping Pulumi cleanly: the other line of work failed")
                for child in _pulumi_children(before):
                    with contextlib.suppress(psutil.Error):
                        child.send_signal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, previous)
        pool.shutdown(wait=False)
    if stopped.is_set() and not interrupted.is_set():
        with contextlib.suppress(Exception):  # it stopped (or failed) as asked: either way
            future.result()
        raise Interrupted(
            "stopped: Pulumi stopped cleanly and the state holds what was created",
            "re-run `zenml-gcp-gitops deploy` with the same flags to resume",
        )
    if interrupted.is_set():
        raise Interrupted(
            "interrupted: Pulumi stopped cleanly and the state holds what was created",
            "re-run `zenml-gcp-gitops deploy` with the same flags to resume",
        )
    return future.result()
