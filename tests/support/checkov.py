"""Run Checkov (from its own venv) on converted plans and rendered manifests.

Checkov pins many dependencies, so it never goes into the project venv: `.ci/run` installs
it next to it and exports `ZGG_CHECKOV`. Outside CI a test finds it there, or on PATH, or
skips with one line.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
ALLOWLIST = REPO_ROOT / ".ci" / "checkov-allowlist.yaml"
_BASE = {"project": "demo-project-123", "region": "europe-west4"}

# The config variants every scan covers (the optional controls are all on in `hardened`).
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "nginx": {"ingress": "nginx"},
    "domain": {"domain": "ml.example.com", "acme_email": "mlops@example.com"},
    "vertex-sa": {
        "orchestrator": "vertex",
        "connector_auth": "service-account",
        "github_repo": "acme/ml-pipelines",
    },
    "hardened": {
        "binary_authorization": True,
        "bucket_access_logs": True,
        "github_repo": "acme/ml-pipelines",
        "github_repo_id": 123456789,
        "github_owner_id": 987654,
        "github_ref": "refs/heads/main",
    },
}


def checkov_binary() -> str | None:
    env = os.environ.get("ZGG_CHECKOV")
    if env:
        return env if Path(env).is_file() else None
    for candidate in (REPO_ROOT / ".venv-checkov" / "bin" / "checkov",):
        if candidate.is_file():
            return str(candidate)
    return shutil.which("checkov")


def variant_config(name: str) -> Any:
    from zenml_gcp_gitops.config import build_config

    return build_config(None, {**_BASE, **VARIANTS[name]})


@dataclass(frozen=True)
class Finding:
    check: str
    framework: str
    file: str  # relative to the scanned root: <variant>.tfplan.json or <variant>/...
    resource: str
    name: str

    @property
    def variant(self) -> str:
        first = self.file.lstrip("/").split("/", 1)[0]
        return first.split(".", 1)[0]


def scan(root: Path, framework: str) -> tuple[list[Finding], list[Finding]]:
    """Scan every file under `root` in one Checkov run: (passed, failed) checks."""
    binary = checkov_binary()
    assert binary, "no checkov binary"
    # --skip-download: no network (no guideline or external-check downloads)
    args = [binary, "-d", str(root), "--framework", framework, "-o", "json", "--skip-download"]
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    proc = subprocess.run(args, capture_output=True, text=True, timeout=900, env=env, cwd=root)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"checkov exited {proc.returncode}: {proc.stderr[-2000:]}")
    reports = json.loads(proc.stdout or "[]")
    if isinstance(reports, dict):
        # nothing scanned gives a bare summary without results
        reports = [reports] if "results" in reports else []
    out: dict[str, list[Finding]] = {"passed_checks": [], "failed_checks": []}
    for rep in reports:
        if rep["summary"].get("parsing_errors"):
            raise RuntimeError(f"checkov could not parse: {rep['results'].get('parsing_errors')}")
        for kind, found in out.items():
            for c in rep["results"].get(kind, []):
                found.append(
                    Finding(
                        c["check_id"], rep["check_type"], c["file_path"], c["resource"],
                        c["check_name"],
                    )
                )  # fmt: skip
    return out["passed_checks"], out["failed_checks"]


def run_checkov(root: Path, framework: str) -> list[Finding]:
    """The failed checks of every file under `root`."""
    return scan(root, framework)[1]


@dataclass
class Allowed:
    check: str
    framework: str
    resource: str
    reason: str
    variants: list[str] = field(default_factory=list)
    used: int = 0

    def matches(self, f: Finding) -> bool:
        return (
            f.check == self.check
            and f.framework == self.framework
            and fnmatch.fnmatchcase(f.resource, self.resource)
            and (not self.variants or f.variant in self.variants)
        )


def load_allowlist(path: Path = ALLOWLIST) -> list[Allowed]:
    entries = yaml.safe_load(path.read_text()) or []
    out = []
    for e in entries:
        assert set(e) <= {"check", "framework", "resource", "variants", "reason"}, e
        assert len(str(e.get("reason", ""))) >= 40, f"{e.get('check')}: give the reason"
        out.append(
            Allowed(
                check=e["check"],
                framework=e["framework"],
                resource=e.get("resource", "*"),
                reason=e["reason"],
                variants=list(e.get("variants") or []),
            )
        )
    for a in out:
        unknown = set(a.variants) - set(VARIANTS)
        assert not unknown, f"{a.check}: unknown variants {unknown}"
    return out
