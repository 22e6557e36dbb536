"""`helm template` on the real upstream charts in ../shared/charts, for pytest.

The charts are read-only data next to the repository (never copied in); helm is found the one
way tests/support/charts.py finds it. Without the charts or helm, tests skip with one line, and
fail when CI=true.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support import charts


def _unavailable(what: str) -> None:
    from tests.conftest import IN_CI

    if IN_CI:  # any truthy CI, as the rest of the suite
        pytest.fail(f"{what} (CI must have it)", pytrace=False)
    pytest.skip(f"{what} (see tests/support/helm.py for where helm comes from)")


def charts_dir() -> Path:
    if not charts.CHARTS.is_dir():
        _unavailable(f"upstream charts {charts.CHARTS} are absent")
    return charts.CHARTS


def chart_path(chart: str, version: str) -> Path:
    charts_dir()
    try:
        return charts.chart_dir(chart, version)
    except charts.ChartsUnavailable as e:
        _unavailable(str(e))
        raise


def helm_template(
    chart: str, version: str, release: str, namespace: str, values: dict[str, Any]
) -> list[dict[str, Any]]:
    """The manifests `helm template` renders, as Argo CD would (no cluster lookups)."""
    path = chart_path(chart, version)
    if charts.helm_binary() is None:
        _unavailable("no helm binary ($HELM_BIN, <venv>/bin/helm or PATH)")
    try:
        return charts.helm_template(path, release, namespace, values)
    except charts.HelmError as e:
        raise AssertionError(f"helm template {chart} {version} failed: {e}") from e
