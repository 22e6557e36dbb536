"""The local rehearsal: the stack's shape on loopback (ZenML, MLflow, GCS emulator, registry).

`deploy --local` and `local up` call `run_local_up`; the work is in `rehearsal.py`, the
process management in `services.py`, the stack spec in `stack.py` and what a pipeline
process needs (`local env`, `local run-example`) in `pipeline_env.py`.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any


def run_local_up(
    name: str = "zenml",
    data_dir: Path | None = None,
    db_url: str | None = None,
    output: str = "text",
) -> None:
    """Start (or re-check) the local services, register `<name>-local`, print how to use it."""
    from .report import print_up

    print_up(up_quietly(output, name, data_dir, db_url), output)


def up_quietly(output: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """`local_up`; with `--output json`, whatever ZenML prints goes to stderr, not stdout."""
    from .rehearsal import local_up

    if output != "json":
        return local_up(*args, progress=True, **kwargs)
    with contextlib.redirect_stdout(sys.stderr):
        return local_up(*args, progress=False, **kwargs)


__all__ = ["run_local_up", "up_quietly"]
