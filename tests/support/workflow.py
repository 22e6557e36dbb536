"""The `run:` steps of a GitHub Actions workflow, played as the runner plays them.

    steps = workflow_steps(path, job, secrets={...}, vars={...})
    for s in steps: run_step(s, env=..., cwd=checkout)

`${{ … }}` expressions of the forms the example uses are evaluated: `secrets.X`, `vars.X`,
`'literal'` and `a || b`; anything else is refused rather than guessed. The workflow's and
each step's `env:` are merged as the runner does; `run:` goes to `bash -e {0}` like a
default Linux step shell (plus pipefail, as GitHub's `bash` shell).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


@dataclass(frozen=True)
class Step:
    name: str
    run: str
    env: dict[str, str]


def evaluate(text: str, secrets: dict[str, str], vars: dict[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        for operand in (o.strip() for o in m[1].split("||")):
            if operand.startswith("'") and operand.endswith("'"):
                value = operand[1:-1]
            elif operand.startswith("secrets."):
                value = secrets.get(operand.removeprefix("secrets."), "")
            elif operand.startswith("vars."):
                value = vars.get(operand.removeprefix("vars."), "")
            else:
                raise ValueError(f"the rehearsal cannot evaluate ${{{{ {m[1]} }}}}")
            if value:
                return value
        return ""

    return _EXPR.sub(one, text)


def workflow_steps(
    path: Path, job: str, secrets: dict[str, str], vars: dict[str, str]
) -> list[Step]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    top = {k: evaluate(str(v), secrets, vars) for k, v in (doc.get("env") or {}).items()}
    steps = []
    for raw in doc["jobs"][job]["steps"]:
        if "run" not in raw:
            continue  # `uses:` actions: the checkout and Python are the rehearsal's own
        env = dict(top)
        env.update({k: evaluate(str(v), secrets, vars) for k, v in (raw.get("env") or {}).items()})
        steps.append(Step(raw.get("name", raw["run"]), evaluate(raw["run"], secrets, vars), env))
    return steps


def run_step(
    step: Step, env: dict[str, str], cwd: Path, log: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run one step; its output goes to `log` (and is returned)."""
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step.run],
        cwd=cwd, env={**env, **step.env}, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        f.write(f"## {step.name} (exit {proc.returncode})\n{proc.stdout}\n{proc.stderr}\n")
    return proc
