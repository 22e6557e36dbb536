"""The built wheel works with no source tree: it carries pulumi_program/ and argocd/, registers
the ZenML hook, and `plan --offline` / `zenml stack deploy gcp-gitops` run from it.

A fast in-suite version of the smoke test in `.ci/run`: the wheel is built without build
isolation (hatchling is a test dependency) and installed with `pip --target` (no deps; the
test venv already has them). `PYTHONPATH` puts that copy ahead of the editable checkout, and
the commands run from an empty directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

PY = sys.executable


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Path:
    given = os.environ.get("ZGG_WHEEL_DIR")  # .ci/run builds it once for everyone
    if given:
        (whl,) = Path(given).glob("zenml_gcp_gitops-*.whl")
        return whl
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [PY, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(repo_root)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (whl,) = out.glob("zenml_gcp_gitops-*.whl")
    return whl


@pytest.fixture(scope="module")
def site(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [
            PY,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-compile",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return target


def _run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ZENML_GCP_GITOPS_DISABLE_CLI"}
    env["PYTHONPATH"] = str(site)
    return subprocess.run(
        [PY, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def test_wheel_carries_program_templates_and_hook(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for need in (
        "zenml_gcp_gitops/zenml_hook.py",
        "zenml_gcp_gitops/pulumi_program/Pulumi.yaml",
        "zenml_gcp_gitops/pulumi_program/__main__.py",
        "zenml_gcp_gitops/pulumi_program/program.py",
    ):
        assert need in names, need
    assert any(n.startswith("zenml_gcp_gitops/argocd/") and n.endswith(".yaml") for n in names)
    assert not any(n.startswith("tests/") or "/tests/" in n for n in names)
    (ep,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    entry_points = zipfile.ZipFile(wheel).read(ep).decode()
    assert "[zenml.init_hooks]" in entry_points
    assert "zenml_gcp_gitops.zenml_hook:install" in entry_points
    assert "zenml-gcp-gitops = zenml_gcp_gitops.cli:main" in entry_points


def test_installed_copy_is_used_and_finds_its_files(site: Path, tmp_path: Path) -> None:
    proc = _run(
        site,
        tmp_path,
        "-c",
        "import json, importlib.metadata as md, zenml_gcp_gitops as z\n"
        "from zenml_gcp_gitops import resources as r\n"
        "eps = [e for e in md.entry_points().select(group='zenml.init_hooks')"
        " if e.value.startswith('zenml_gcp_gitops')]\n"
        "print(json.dumps({'pkg': z.__file__, 'program': str(r.program_dir()),"
        " 'argocd': str(r.argocd_dir()), 'program_pkg': r.program_package().__file__,"
        " 'hooks': len(eps)}))",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    for key in ("pkg", "program", "argocd", "program_pkg"):
        assert got[key].startswith(str(site)), (key, got[key])
    assert got["hooks"] == 1  # the wheel's dist-info shadows the editable one


def test_plan_offline_from_the_wheel(site: Path, tmp_path: Path) -> None:
    proc = _run(
        site,
        tmp_path,
        "-c",
        "from zenml_gcp_gitops.cli import main; main()",
        "plan",
        "--offline",
        "--project",
        "demo-project-123",
        "--region",
        "europe-west4",
        "--output",
        "json",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    plan = json.loads(proc.stdout)
    assert plan["version"] == 1
    types = {r["type"] for r in plan["resources"]}
    assert "gcp:container/cluster:Cluster" in types
    assert list(tmp_path.iterdir()) == []  # nothing written to the working directory


def test_zenml_stack_deploy_gcp_gitops_from_the_wheel(site: Path, tmp_path: Path) -> None:
    proc = _run(
        site,
        tmp_path,
        "-c",
        "import sys; sys.argv = ['zenml', 'stack', 'deploy', 'gcp-gitops', '--help']\n"
        "from zenml_cli import cli\n"
        "import zenml_gcp_gitops\n"
        "sys.stderr.write('PKG=' + zenml_gcp_gitops.__file__ + '\\n')\n"
        "cli()",
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    assert "Usage: zenml stack deploy gcp-gitops [OPTIONS]" in text
    assert f"PKG={site}" in text
