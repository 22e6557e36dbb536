"""The `zenml-gcp-gitops` command line.

Each area's commands live in their own module; every heavy import (zenml, pulumi_gcp,
kubernetes) happens inside a command body so `--help` stays instant.
"""

from __future__ import annotations

import sys

import click

from .. import __version__
from ..errors import UserError


class _Group(click.Group):
    """Turns `UserError` into one red line and its exit code, never a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except UserError as e:
            from ..ui import console_err

            console_err().print(f"[red]Error:[/red] {e.message}", highlight=False, soft_wrap=True)
            if e.hint:
                console_err().print(f"[dim]Hint:[/dim] {e.hint}", highlight=False, soft_wrap=True)
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
    sys.exit(main())
