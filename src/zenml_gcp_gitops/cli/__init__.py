"""The `zenml-gcp-gitops` command line.

Each area's commands live in their own module; every heavy import (zenml, pulumi_gcp,
kubernetes) happens inside a command body so `--help` stays instant.
"""

from __future__ import annotations

import click

from .. import __version__
from ..errors import UserError

# click >= 8.2 shows a group's help through this UsageError subclass; it is not an error.
_HELP_ERRORS = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _error_line(message: str, hint: str | None) -> None:
    """One line on stderr; values are escaped so brackets in them are not rich markup."""
    from rich.markup import escape

    from ..ui import console_err

    line = f"[red]Error:[/red] {escape(message)}"
    if hint:
        line += f" [dim]({escape(hint)})[/dim]"
    console_err().print(line, highlight=False, soft_wrap=True)


class _Group(click.Group):
    """Turns `UserError` and click usage errors into one red line and their exit code."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except UserError as e:
            _error_line(e.message, e.hint)
            ctx.exit(e.exit_code)
        except _HELP_ERRORS:
            raise
        except click.UsageError as e:
            # A bad flag value, unknown option or conflicting flags is bad input like a
            # ConfigError: one line and exit 2, instead of click's four-line block.
            where = e.ctx.command_path if e.ctx is not None else ctx.command_path
            _error_line(e.format_message(), f"see '{where} --help'")
            ctx.exit(e.exit_code)


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
    cli(prog_name="zenml-gcp-gitops")


if __name__ == "__main__":  # pragma: no cover
    main()
