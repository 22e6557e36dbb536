"""What a pipeline process (or a CI job) needs to use the local rehearsal's stack: its
environment (`local env`), the `env` file in the data dir, and `local run-example`.

It reads the rehearsal's `state.json` and credential files only; it starts and stops nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import UserError, echo_path
from ..names import LocalNames
from .services import LocalState, write_secret
from .specs import ANALYTICS_OFF_ENV, EMULATOR_ENV, EnvVar, Layout, default_dir


def pipeline_env(base: Path) -> list[EnvVar]:
    """The variables a pipeline process (or CI job) needs to use the local stack."""
    state = LocalState.load(base)
    if state is None or "zenml" not in state.services:
        raise UserError(
            f"no local rehearsal in {echo_path(base)}", "run `zenml-gcp-gitops local up` first"
        )
    key_file = state.info.get("credentials", {}).get("ci_api_key")
    if not key_file:
        raise UserError("the local stack is not registered yet", "run `zenml-gcp-gitops local up`")
    # A shell that has only these variables must start on the rehearsal's stack, not `default`.
    stack_id = state.info.get("stack_id")
    return [
        EnvVar("ZENML_STORE_URL", state.services["zenml"].url),
        EnvVar("ZENML_STORE_API_KEY", file=key_file),
        *([EnvVar("ZENML_ACTIVE_STACK_ID", stack_id)] if stack_id else []),
        EnvVar("STORAGE_EMULATOR_HOST", state.services["gcs"].url),
        *(EnvVar(k, v) for k, v in EMULATOR_ENV.items()),
        *(EnvVar(k, v) for k, v in ANALYTICS_OFF_ENV.items()),
    ]


def run_example(name: str, data_dir: Path | None = None, min_accuracy: float | None = None) -> int:
    """Run examples/run.py on `<name>-local` in a child process with the pipeline env."""
    import subprocess

    from ..resources import examples_dir

    base = (data_dir or default_dir(name)).resolve()
    from ..ui import quiet_env

    env = quiet_env({**os.environ, **{v.name: v.resolve() for v in pipeline_env(base)}})
    script = examples_dir() / "run.py"
    argv = [sys.executable, str(script), "--stack", LocalNames(name).zenml_stack]
    if min_accuracy is not None:
        argv += ["--min-accuracy", str(min_accuracy)]
    from ..ui import console_err

    console_err().print(f"Running {script} on {LocalNames(name).zenml_stack}")
    return subprocess.call(argv, env=env)


def write_env_file(lay: Layout, env: list[EnvVar]) -> None:
    body = (
        "# Environment for pipelines on the local ZenML stack: `source` this file.\n"
        "# The API key is read from its 0600 file, so this file holds no secret.\n"
        + "\n".join(v.export_line() for v in env)
        + "\n"
    )
    write_secret(lay.env_file, body.rstrip("\n"))
