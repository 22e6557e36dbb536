"""Every command of the CLI, gathered from the per-area modules.

Each command checks, before its body runs, that the extra it needs is installed (`extras`):
a light install (what pipelines need) still shows every command's help.
"""

from __future__ import annotations

import functools
from typing import Any

import click

from .. import extras
from . import deploy, gitops, local, ops, pause, plan, zenml


def _needs(command: click.Command, extra: str, path: str = "zenml-gcp-gitops") -> click.Command:
    where = f"{path} {command.name}"
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _needs(sub, extra, where)
        return command
    body = command.callback
    if body is None:  # pragma: no cover - every command of ours has a body
        return command

    @functools.wraps(body)
    def checked(*args: Any, **kwargs: Any) -> Any:
        extras.require(extra, f"`{where}`")
        return body(*args, **kwargs)

    command.callback = checked
    return command


ALL: list[click.Command] = [
    *(
        _needs(c, extras.DEPLOY)
        for c in (
            *plan.COMMANDS,
            *deploy.COMMANDS,
            *gitops.COMMANDS,
            *zenml.COMMANDS,
            *ops.COMMANDS,
            *pause.COMMANDS,
        )
    ),
    *(_needs(c, extras.LOCAL) for c in local.COMMANDS),
]
