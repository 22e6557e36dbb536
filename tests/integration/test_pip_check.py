"""`pip check` in fresh venvs: this package beside ZenML's own integration lists, resolved
from the registry plus a wheel of this checkout, as a user or an image would install them.

    kubernetes variant   the light part + ZenML 0.98's gcp, kubernetes and mlflow lists, in one
                         pip run; then `zenml integration install ...` as ZenML documents it
                         (ZenML's own conflicts only, none of ours); then `[deploy]` beside them
    vertex variant       the light part + the gcp and mlflow lists

Slow (network and disk: about 1.3 GB per venv), so `.ci/run` runs this file in the background
beside the rest of the suite, and not in the main pytest run. The wheel is built once: from
$ZGG_WHEEL_DIR when set, else here. The venvs share pip's cache.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.venv]

ZENML = "zenml==0.98.0"  # the release the package is tested with (the stack's server too)
KUBERNETES_SET = ("gcp", "kubernetes", "mlflow")
VERTEX_SET = ("gcp", "mlflow")
PIP_TIMEOUT = 1500  # one resolution; more than this is pip backtracking, a failure
# ZenML 0.98 pins opentelemetry-sdk==1.43.0 and friends; `zenml integration install mlflow`
# upgrades them (it does not pass zenml's own pins to pip). Reproduced without this package.
ZENMLS_OWN = re.compile(r"^(zenml|opentelemetry-[a-z-]+) [^ ]+ has requirement opentelemetry-")


def _registry_reachable(into: Path) -> bool:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(into), "six"],
        capture_output=True,
        timeout=120,
    )
    return proc.returncode == 0


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Path:
    given = os.environ.get("ZGG_WHEEL_DIR")
    if given:
        (whl,) = Path(given).glob("zenml_gcp_gitops-*.whl")
        return whl
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out),
         str(repo_root)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (whl,) = out.glob("zenml_gcp_gitops-*.whl")
    return whl


@pytest.fixture(scope="module", autouse=True)
def _registry(tmp_path_factory: pytest.TempPathFactory) -> None:
    if _registry_reachable(tmp_path_factory.mktemp("probe")):
        return
    if os.environ.get("CI"):
        pytest.fail("the package registry is unreachable (CI=true)")
    pytest.skip("the package registry is unreachable")


class Venv:
    def __init__(self, path: Path) -> None:
        self.path = path
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
        self.env = {
            **os.environ,
            "ZENML_CONFIG_PATH": str(path / "zenml-config"),
            "ZENML_ANALYTICS_OPT_IN": "false",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
        self.env.pop("PYTHONPATH", None)

    def run(self, *args: str, timeout: float = PIP_TIMEOUT) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [str(self.path / "bin" / args[0]), *args[1:]],
                capture_output=True, text=True, timeout=timeout, env=self.env, cwd=self.path,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            pytest.fail(f"{' '.join(args[:4])}... ran over {timeout} s (pip backtracking)")

    def pip(self, *args: str) -> None:
        proc = self.run("python", "-m", "pip", "install", "-q", *args)
        assert proc.returncode == 0, proc.stderr[-3000:]

    def export(self, integrations: tuple[str, ...]) -> Path:
        out = self.path / "integrations.txt"
        out.unlink(missing_ok=True)  # the export asks before it overwrites
        proc = self.run("zenml", "integration", "export-requirements", *integrations,
                        "--output-file", str(out), timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        return out

    def check(self) -> list[str]:
        proc = self.run("python", "-m", "pip", "check", timeout=300)
        lines = [x for x in proc.stdout.splitlines() if x.strip()]
        assert (proc.returncode == 0) == (lines == ["No broken requirements found."]), proc.stdout
        return [] if proc.returncode == 0 else lines


def _install_beside(venv: Venv, wheel: str, integrations: tuple[str, ...]) -> None:
    """The light part first (it brings ZenML and its CLI), then one pip run with ZenML, the
    integrations' lists and the wheel again, so ZenML's own pins take part in the resolution."""
    venv.pip(wheel, ZENML)
    venv.pip(wheel, ZENML, "-r", str(venv.export(integrations)))


def test_kubernetes_variant_light_then_zenml_s_install_then_deploy(
    wheel: Path, tmp_path: Path
) -> None:
    venv = Venv(tmp_path / "venv")
    _install_beside(venv, str(wheel), KUBERNETES_SET)
    assert venv.check() == []

    # What ZenML tells its users to run. It breaks ZenML's own opentelemetry pins; nothing of
    # ours takes part (docs/cli.md#packaging has the same check without this package).
    proc = venv.run("zenml", "integration", "install", *KUBERNETES_SET, "-y")
    assert proc.returncode == 0, proc.stderr[-3000:]
    problems = venv.check()
    assert [p for p in problems if not ZENMLS_OWN.match(p)] == [], problems

    # The deploy extra beside the same lists (kubernetes resolves below ZenML's <26 pin).
    venv.pip(f"{wheel}[deploy]", ZENML, "-r", str(venv.export(KUBERNETES_SET)))
    assert venv.check() == []


def test_vertex_variant_light_part_beside_the_gcp_and_mlflow_lists(
    wheel: Path, tmp_path: Path
) -> None:
    venv = Venv(tmp_path / "venv")
    _install_beside(venv, str(wheel), VERTEX_SET)
    assert venv.check() == []
