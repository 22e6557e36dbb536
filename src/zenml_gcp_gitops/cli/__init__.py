"""The `zenml-gcp-gitops` command line.

Each area's commands live in their own module; every heavy import (zenml, pulumi_gcp,
kubernetes) happens inside a command body so `--help` stays instant.
"""

# ruff: noqa: E402 - the imports below come after the start-up Ctrl-C handler

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

INTERRUPTED = "Error: interrupted (re-running the same command continues)"


def _interrupted_while_starting(signum: int, frame: object) -> None:
    """Ctrl-C while the CLI still imports: one line and 130, not a traceback from an import."""
    sys.stderr.write(INTERRUPTED + "\n")
    raise SystemExit(130)


# Only where Python's own Ctrl-C handler is in place (an inherited "ignore" stays ignored).
_STARTING = (
    threading.current_thread() is threading.main_thread()
    and signal.getsignal(signal.SIGINT) is signal.default_int_handler
)
if _STARTING:
    signal.signal(signal.SIGINT, _interrupted_while_starting)

# after the handler: these imports are most of the start-up
import click

from .. import __version__
from ..errors import UserError, known_error
from ..files import os_error_line
from ..ui import quiet_third_party_warnings

quiet_third_party_warnings()

# click >= 8.2 shows a group's help through this UsageError subclass; it is not an error.
_HELP_ERRORS = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _one_line(text: str) -> str:
    """Whatever a message echoes (a path, a server's reply): a single printable line."""
    import unicodedata

    return "".join(
        c if c == " " or unicodedata.category(c) not in ("Cc", "Cs", "Cf", "Zl", "Zp") else " "
        for c in text
    )


def _error_line(message: str, hint: str | None) -> None:
    """One line on stderr; values are escaped so brackets in them are not rich markup."""
    from rich.markup import escape

    from ..ui import console_err

    line = f"[red]Error:[/red] {escape(_one_line(message))}"
    if hint:
        line += f" [dim]({escape(_one_line(hint))})[/dim]"
    console_err().print(line, highlight=False, soft_wrap=True)


def _json_error(ctx: click.Context, message: str, hint: str | None, exit_code: int) -> None:
    """With `-o json`, stdout carries one document even on failure (unless one was printed)."""
    from .. import ui

    if ctx.meta.get(ui.OUTPUT_META) != "json" or ui.json_printed():
        return
    data: dict[str, Any] = {"ok": False, "error": message, "exit_code": exit_code}
    if hint:
        data["hint"] = hint
    ui.print_json(data)


def _crash_log(ctx: click.Context, exc: BaseException) -> str:
    """Keep an unexpected error's traceback in a log file; the user sees one line and its path."""
    import time
    import traceback

    from ..config import user_data_dir

    name = "-".join(ctx.command_path.split()[1:]) or "cli"
    try:
        path = user_data_dir() / "logs" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(traceback.format_exception(exc)))
        return str(path)
    except OSError:
        return "(no log: the data dir is not writable)"


class _Group(click.Group):
    """Every failure of every command is one line on stderr with its exit code.

    `UserError`: its message and hint. Click usage errors: one line and exit 2, instead of
    click's four-line block. Ctrl-C: exit 130. Anything else: one line naming the error and
    the log file that keeps its traceback, exit 1. With `-o json`, stdout also gets an error
    document.
    """

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except UserError as e:
            self._fail(ctx, e.message, e.hint, e.exit_code)
        except _HELP_ERRORS:
            raise
        except click.UsageError as e:
            where = e.ctx.command_path if e.ctx is not None else ctx.command_path
            self._fail(ctx, e.format_message(), f"see '{where} --help'", e.exit_code)
        except (click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except click.ClickException as e:
            self._fail(ctx, e.format_message(), None, e.exit_code)
        except KeyboardInterrupt:
            self._fail(ctx, "interrupted", "re-running the same command continues", 130)
        except OSError as e:
            if e.filename is None:
                self._unexpected(ctx, e)
            # a path the user gave (or one under it): one line naming it and the reason
            self._fail(ctx, os_error_line(e), "check the path and its folder", 1)
        except ImportError as e:
            from ..extras import from_import_error

            needs = from_import_error(e, f"`{ctx.command_path} {ctx.invoked_subcommand or ''}`")
            if needs is not None:
                self._fail(ctx, needs.message, needs.hint, needs.exit_code)
            self._unexpected(ctx, e)
        except Exception as e:  # noqa: BLE001 - the one place an unexpected error becomes one line
            known = known_error(e)
            if known is not None:
                self._fail(ctx, known.message, known.hint, known.exit_code)
            self._unexpected(ctx, e)
        return None  # pragma: no cover - every branch above exits

    def _unexpected(self, ctx: click.Context, e: BaseException) -> None:
        log = _crash_log(ctx, e)
        self._fail(
            ctx,
            f"unexpected error: {e.__class__.__name__}: {_cut(str(e))}",
            f"details in {log}",
            1,
        )

    @staticmethod
    def _fail(ctx: click.Context, message: str, hint: str | None, code: int) -> None:
        _json_error(ctx, message, hint, code)
        _error_line(message, hint)
        ctx.exit(code)


def _cut(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zenml-gcp-gitops")
def cli() -> None:
    """Deploy a production ZenML + MLflow stack on Google Cloud, run by Argo CD.

    \b
    Phases:  preflight -> infra (Pulumi) -> gitops (Argo CD) -> register (ZenML) -> ci
    Start:   zenml-gcp-gitops plan --offline --project my-proj --region europe-west4
    """


def _register_commands() -> None:
    from . import commands

    for command in commands.ALL:
        cli.add_command(command)


_register_commands()
if _STARTING:  # from here on, `main` and `_Group.invoke` answer Ctrl-C
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _exit_interrupted() -> None:
    """Exit 130 at once now that the answer is printed and what the run started is cleaned
    up. The interpreter's own teardown (collecting a heap that holds pulumi_gcp or zenml,
    joining threads a library left waiting on a stream) takes seconds on a busy machine: run
    the exit handlers (temporary files, log flushes) and leave without it."""
    import atexit
    import os

    try:
        atexit._run_exitfuncs()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)


def main() -> None:
    try:
        cli(prog_name="zenml-gcp-gitops")
    except KeyboardInterrupt:  # pragma: no cover - before or after a command runs
        sys.stderr.write(INTERRUPTED + "\n")
        _exit_interrupted()
    except SystemExit as e:
        if e.code == 130:  # Ctrl-C, answered by the command: what it started is cleaned up
            _exit_interrupted()
        raise


if __name__ == "__main__":  # pragma: no cover
    main()
