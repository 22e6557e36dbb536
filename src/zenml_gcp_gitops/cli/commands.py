"""Every command of the CLI, gathered from the per-area modules."""

from __future__ import annotations

import click

from . import deploy, gitops, local, ops, plan, zenml

ALL: list[click.Command] = [
    *plan.COMMANDS,
    *deploy.COMMANDS,
    *gitops.COMMANDS,
    *zenml.COMMANDS,
    *local.COMMANDS,
    *ops.COMMANDS,
]
