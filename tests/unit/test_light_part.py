"""The light part of the distribution (what pipelines and images install) asks for nothing
that ZenML and its `gcp` integration do not already require, and loads without the `deploy`
extra; the commands then name the extra in one line."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Top-level modules of the deploy extra's distributions (and the local rehearsal's).
DEPLOY_MODULES = (
    "pulumi", "pulumi_gcp", "pulumi_random", "kubernetes", "google.cloud.storage",
    "google.cloud.secretmanager", "google.cloud.kms", "google.cloud.dns",
    "google.cloud.resourcemanager_v3", "google.cloud.billing_v1", "google.cloud.service_usage_v1",
    "google.cloud.artifactregistry", "semver", "tenacity", "mlflow",
)  # fmt: skip


def _name(req: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0]).lower()


def test_the_light_part_requires_only_what_zenml_and_its_gcp_integration_require() -> None:
    from zenml.integrations.gcp import GcpIntegration

    base = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    zenml_own = {_name(r) for r in metadata.requires("zenml") or [] if "extra ==" not in r}
    allowed = zenml_own | {_name(r) for r in GcpIntegration.REQUIREMENTS} | {"zenml"}
    assert {_name(r) for r in base} - allowed == set()


def _run_blocked(code: str, home: Path) -> subprocess.CompletedProcess[str]:
    """Run `code` in a process where every deploy-time module fails to import, as in an
    environment with only the light part installed."""
    blocker = textwrap.dedent(
        f"""
        import sys
        BLOCKED = {DEPLOY_MODULES!r}
        class Block:
            def find_spec(self, name, path=None, target=None):
                if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                return None
        sys.meta_path.insert(0, Block())
        """
    )
    return subprocess.run(
        [sys.executable, "-c", blocker + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=home,
        env={
            "PYTHONPATH": str(ROOT / "src"),
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),
            "ZENML_CONFIG_PATH": str(home / "zenml"),
            "ZENML_ANALYTICS_OPT_IN": "false",
            "ZENML_GCP_GITOPS_HOME": str(home / "zgg"),
        },
    )


def test_the_flavor_and_the_cli_entry_load_without_the_deploy_extra(tmp_path: Path) -> None:
    proc = _run_blocked(
        """
        from zenml_gcp_gitops.flavors.image_builder import GCPBuildAccountImageBuilderFlavor
        from zenml_gcp_gitops import image_builder  # the 0.1 path servers hold
        from zenml_gcp_gitops.cli import cli
        from click.testing import CliRunner
        res = CliRunner().invoke(cli, ["deploy", "--help"])
        assert res.exit_code == 0, res.output
        print(GCPBuildAccountImageBuilderFlavor().name)
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "gcp-build-account"


@pytest.mark.parametrize(
    "command", [["deploy", "--project", "p-123456", "--region", "europe-west4"]]
)
def test_a_command_whose_extra_is_missing_says_what_to_install_in_one_line(
    command: list[str], tmp_path: Path
) -> None:
    """Without the extra's distributions, the command stops before doing anything and names
    the install line (here the distribution's metadata is faked to list a missing one)."""
    proc = _run_blocked(
        f"""
        import importlib.metadata as md
        real = md.requires
        md.requires = lambda d: (
            ["zenml>=0.95", "pulumi>=3; extra == 'deploy'", "no-such-dist-zgg>=1; extra == 'deploy'"]
            if d == "zenml-gcp-gitops" else real(d)
        )
        from zenml_gcp_gitops.cli import main
        import sys
        sys.argv = ["zenml-gcp-gitops", *{command!r}]
        main()
        """,
        tmp_path,
    )
    from zenml_gcp_gitops import __version__

    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "`zenml-gcp-gitops deploy` needs the [deploy] extra of zenml-gcp-gitops" in lines[0]
    assert f"pip install 'zenml-gcp-gitops[deploy]=={__version__}'" in lines[0]
