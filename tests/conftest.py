"""Suite-wide isolation: no test touches the user's ZenML config or data dir, nor phones home."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_SCHEMAS = REPO_ROOT.parent / "shared" / "schemas"

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


@pytest.fixture(scope="session")
def shared_schemas() -> Path:
    """The CRD and chart-values JSON schemas we are given (data, never copied in)."""
    if not SHARED_SCHEMAS.is_dir():
        pytest.skip(f"schemas folder {SHARED_SCHEMAS} is absent; CRD/values validation needs it")
    return SHARED_SCHEMAS
