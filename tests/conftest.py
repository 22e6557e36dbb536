"""Suite-wide isolation: no test touches the user's ZenML config or data dir, nor phones home."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"
SHARED_SCHEMAS = SHARED / "schemas"
# CI must run everything: there a missing prerequisite fails the test instead of skipping it.
# Any truthy value counts (CI=true, CI=1, CI=yes, CI=woodpecker...).
IN_CI = os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no", "off"}
_SKIPPED: dict[str, int] = {}

_session_home = Path(tempfile.mkdtemp(prefix="zgg-test-home-"))
os.environ["ZENML_GCP_GITOPS_HOME"] = str(_session_home / "data")
os.environ.setdefault("ZENML_CONFIG_PATH", str(_session_home / "zenml-config"))
os.environ["ZENML_ANALYTICS_OPT_IN"] = "false"
os.environ["ZENML_ENABLE_RICH_TRACEBACK"] = "false"
os.environ["AUTO_OPEN_DASHBOARD"] = "false"
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def require(missing: str | None) -> None:
    """Skip (outside CI) or fail (CI=true) when a prerequisite is missing. Skips are counted
    and summed up in one line per prerequisite at the end of the run."""
    if missing is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true but this test needs {missing}", pytrace=False)
    pytest.skip(f"{_NEEDS}{missing}")


_NEEDS = "needs "


def pytest_runtest_logreport(report: Any) -> None:
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        if reason.startswith(_NEEDS):
            what = reason.removeprefix(_NEEDS)
            _SKIPPED[what] = _SKIPPED.get(what, 0) + 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for what, count in _SKIPPED.items():
        terminalreporter.write_line(
            f"{count} test(s) skipped, they need {what} (see README, 'Tests'); "
            "with CI=true they fail instead"
        )


@pytest.fixture
def zenml_source_root(monkeypatch: pytest.MonkeyPatch, repo_root: Path) -> Path:
    """ZenML resolves sources against the main module's folder; a pytest-xdist worker's main
    module has no file, so tests that load a source name the root as `zenml init` would."""
    from zenml.utils import source_utils

    monkeypatch.setattr(source_utils, "_CUSTOM_SOURCE_ROOT", str(repo_root))
    return repo_root


@pytest.fixture
def shared_schemas() -> Path:
    """The CRD and chart-values JSON schemas we are given (data, never copied in)."""
    require(None if SHARED_SCHEMAS.is_dir() else f"the schemas in {SHARED_SCHEMAS}")
    return SHARED_SCHEMAS


@pytest.fixture
def helm_charts() -> None:
    """The real upstream charts in ../shared/charts and a helm binary."""
    from tests.support import charts

    require(charts.missing())


@pytest.fixture
def mariadb_installed() -> None:
    """`mariadbd` from apt: the stand-in for Cloud SQL MySQL."""
    from tests.support.zenml_server import mariadb_available

    require(None if mariadb_available() else "mariadbd (apt-get install mariadb-server)")


@pytest.fixture
def sql_http() -> Any:
    """`sql_http(fake)`: the product's `RestSqlAdmin` over loopback HTTP to a server that answers
    as the SQL Admin API does, in front of `fake` (tests/fakes/sqladmin.py)."""
    from tests.fakes.google_rest import sql_over_http

    return sql_over_http


@pytest.fixture(autouse=True)
def _google_rest_servers() -> Any:
    """Stops the loopback Google servers a test started; a request Google would have refused
    for its shape (unknown method, misspelt field, bad enum) fails the test."""
    yield
    import sys

    mod = sys.modules.get("tests.fakes.google_rest")
    if mod is not None:
        refused = mod.close_all()
        assert not refused, refused
