"""Console helpers: rich when there is a terminal, plain lines when there is not (CI)."""

from __future__ import annotations

import json
import os
import sys
from functools import cache
from typing import Any

from rich.console import Console


def is_interactive() -> bool:
    return sys.stdout.isatty() and not os.environ.get("CI")


@cache
def console() -> Console:
    return Console(highlight=False, soft_wrap=True)


@cache
def console_err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """Machine-readable output goes to stdout alone, unstyled."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()
