"""The local rehearsal: the stack's shape on loopback (ZenML, MLflow, GCS emulator, registry).

`deploy --local` and `local up` call `run_local_up`; the work is in `rehearsal.py`, the
process management in `services.py` and the stack spec in `stack.py`.
"""

from __future__ import annotations

from pathlib import Path


def run_local_up(
    name: str = "zenml",
    data_dir: Path | None = None,
    db_url: str | None = None,
    output: str = "text",
) -> None:
    """Start (or re-check) the local services, register `<name>-local`, print how to use it."""
    from .rehearsal import local_up
    from .report import print_up

    result = local_up(name, data_dir, db_url, progress=output != "json")
    print_up(result, output)


__all__ = ["run_local_up"]
