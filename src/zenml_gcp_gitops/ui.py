"""Console helpers: rich when there is a terminal, plain lines when there is not (CI)."""

from __future__ import annotations

import json
import os
import sys
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def is_interactive() -> bool:
    return sys.stdout.isatty() and not os.environ.get("CI")


@cache
def console() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


@cache
def console_err() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


OUTPUT_META = "zenml_gcp_gitops.output"  # click ctx.meta key: the command's -o value
_printed: list[bool] = []


def remember_output(ctx: Any, _param: Any, value: str) -> str:
    """Click callback of every `--output`: the error handler needs it to answer in JSON."""
    ctx.meta[OUTPUT_META] = value
    _printed.clear()
    return value


def json_printed() -> bool:
    return bool(_printed)


def print_json(data: Any) -> None:
    """Machine-readable output goes to stdout alone, unstyled."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()
    _printed.append(True)


def self_command() -> str:
    """How to run this CLI so that a printed command works as printed.

    The bare name when it is on PATH and is this install; else the absolute path of this
    install's script (e.g. a venv that is not activated); else `python -m`.
    """
    import shlex
    import shutil
    from pathlib import Path

    script = Path(sys.executable).with_name("zenml-gcp-gitops")
    found = shutil.which("zenml-gcp-gitops")
    if found and (not script.exists() or Path(found).resolve() == script.resolve()):
        return "zenml-gcp-gitops"
    if script.exists():
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m zenml_gcp_gitops"


# Third-party noise that a user can do nothing about; real warnings still show. In the
# PYTHONWARNINGS syntax, so child processes get the same filter.
# google-api-core warns on every import that this Python version nears its end of life.
QUIET_WARNINGS = (
    "ignore:You are using a Python version:FutureWarning",
    "ignore:You are using a non-supported Python version:FutureWarning",
)


def quiet_third_party_warnings() -> None:
    import warnings

    for spec in QUIET_WARNINGS:
        message = spec.split(":")[1]
        warnings.filterwarnings("ignore", message=message, category=FutureWarning)


def quiet_env(env: dict[str, str]) -> dict[str, str]:
    """`env` for a child Python process, with the same warning filter."""
    have = env.get("PYTHONWARNINGS", "")
    return {**env, "PYTHONWARNINGS": ",".join(x for x in (have, *QUIET_WARNINGS) if x)}
