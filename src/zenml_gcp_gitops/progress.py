"""Progress of the phases: rich on a terminal, plain lines for CI and pipes."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


# --------------------------------------------------------------------------- progress


def _fmt_elapsed(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


class PlainReporter:
    """Plain lines for CI and pipes: one per phase event, progress only when it moves."""

    def __init__(self, stream: Any = None, verbose: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.verbose = verbose
        self.phase = ""
        self._last: tuple[int, str | None] | None = None
        self._last_t = 0.0

    def _print(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def phase_start(self, name: str) -> None:
        self.phase = name
        self._last = None
        self._print(f"[{name}] started")

    def phase_end(self, name: str, status: str, elapsed: float) -> None:
        self._print(f"[{name}] {status} ({_fmt_elapsed(elapsed)})")

    def step(self, message: str) -> None:
        self._last = None
        self._print(f"[{self.phase}] {message}")

    def progress(self, done: int, total: int | None, current: str | None = None) -> None:
        # CI logs: a line when a resource finishes, at most one a second (plus the last one)
        now = time.monotonic()
        if self._last is not None and (
            done == self._last[0] or (now - self._last_t < 1.0 and done != total)
        ):
            return
        self._last, self._last_t = (done, current), now
        count = f"{done}/{total}" if total else f"{done}"
        self._print(f"[{self.phase}] {count} resources" + (f" - {current}" if current else ""))

    def log(self, line: str) -> None:
        if self.verbose:
            self._print(f"[{self.phase}]   {line}")

    def close(self) -> None:
        pass


class RichReporter:
    """A rich progress display per phase with elapsed time, in the style of ZenML's CLI."""

    def __init__(self, verbose: bool = False, console: Any = None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        from .ui import console_err

        self.verbose = verbose
        self.console = console or console_err()
        self.progress_ui = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.fields[phase]:<10}[/bold]"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}", style="dim"),
            console=self.console,
            transient=False,
        )
        self.task: Any = None
        self.phase = ""
        self.started = False

    def phase_start(self, name: str) -> None:
        if not self.started:  # the live display starts with the first phase, not before
            self.progress_ui.start()
            self.started = True
        self.phase = name
        self.task = self.progress_ui.add_task("", phase=name, total=None)

    def phase_end(self, name: str, status: str, elapsed: float) -> None:
        if self.task is None:
            return
        mark = {"succeeded": "[green]done[/green]", "skipped": "[dim]skipped[/dim]"}.get(
            status, f"[red]{status}[/red]"
        )
        task = self.progress_ui.tasks[self.task]
        if status in ("succeeded", "skipped"):
            total = task.total if task.total is not None else max(task.completed, 1)
            self.progress_ui.update(self.task, total=total, completed=total, description=mark)
        else:  # leave the bar where it stopped
            self.progress_ui.update(self.task, description=mark)
        self.progress_ui.stop_task(self.task)
        self.task = None

    def step(self, message: str) -> None:
        if self.task is not None:
            self.progress_ui.update(self.task, description=message)

    def progress(self, done: int, total: int | None, current: str | None = None) -> None:
        if self.task is not None:
            self.progress_ui.update(
                self.task, completed=done, total=total, description=current or ""
            )

    def log(self, line: str) -> None:
        if self.verbose:
            self.progress_ui.console.print(f"  [dim]{line}[/dim]", highlight=False, markup=False)

    def close(self) -> None:
        if self.started:
            self.progress_ui.stop()
            self.started = False

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Stop the live display while the user answers a prompt."""
        was = self.started
        self.close()
        try:
            yield
        finally:
            if was:
                self.progress_ui.start()
                self.started = True


def make_reporter(verbose: bool = False, interactive: bool | None = None) -> Any:
    from .ui import is_interactive

    if interactive if interactive is not None else (is_interactive() and sys.stderr.isatty()):
        return RichReporter(verbose=verbose)
    return PlainReporter(verbose=verbose)


class ServiceProgress:
    """Services starting side by side (`local up`): one line each, done when ready; a rich
    live display on a terminal, plain lines elsewhere (CI logs)."""

    def __init__(self, enabled: bool, interactive: bool) -> None:
        self.enabled = enabled
        self.interactive = interactive and enabled
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> ServiceProgress:
        if self.interactive:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            from .ui import console_err

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
        from .ui import console_err

        with self._lock:
            console_err().print(text, highlight=False)
