"""The `zenml-gcp-gitops` command line.

Each area's commands live in their own module; every heavy import (zenml, pulumi_gcp,
kubernetes) happens inside a command body so `--help` stays instant.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from .. import __version__
from ..errors import UserError, known_error
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
        except ImportError as e:
            from ..extras import from_import_error

            needs = from_import_error(e, f"`{ctx.command_path} {ctx.invoked_subcommand or ''}`")
            if needs is not None:
                self._fail(ctx, needs.message, needs.hint, needs.exit_code)
            self._fail(ctx, *_unexpected(ctx, e))
        except Exception as e:  # noqa: BLE001 - the one place an unexpected error becomes one line
            known = known_error(e)
            if known is not None:
                self._fail(ctx, known.message, known.hint, known.exit_code)
            self._fail(ctx, *_unexpected(ctx, e))
        return None  # pragma: no cover - every branch above exits

    @staticmethod
    def _fail(ctx: click.Context, message: str, hint: str | None, code: int) -> None:
        _json_error(ctx, message, hint, code)
        _error_line(message, hint)
        ctx.exit(code)


def _unexpected(ctx: click.Context, e: BaseException) -> tuple[str, str, int]:
    log = _crash_log(ctx, e)
    return f"unexpected error: {e.__class__.__name__}: {_cut(str(e))}", f"details in {log}", 1


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


def main() -> None:
    try:
        cli(prog_name="zenml-gcp-gitops")
    except KeyboardInterrupt:  # pragma: no cover - before or after a command runs
        sys.stderr.write("Error: interrupted\n")
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
