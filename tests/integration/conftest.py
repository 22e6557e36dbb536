"""Fixtures shared by the tests that run the real program through the fake `pulumi` CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.pulumi import make_fake_pulumi


@pytest.fixture(scope="session")
def fake_pulumi_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fake_pulumi(tmp_path_factory.mktemp("fake-pulumi"))


@pytest.fixture
def fake_pulumi_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A test's own Pulumi home, passphrase, data dir and call log; no fault left set."""
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "test-passphrase")
    monkeypatch.setenv("PULUMI_HOME", str(tmp_path / "pulumi-home"))
    monkeypatch.setenv("ZENML_GCP_GITOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FAKE_PULUMI_CALLS", str(tmp_path / "calls.jsonl"))
    for var in (
        "FAKE_PULUMI_FAIL_RESOURCE",
        "FAKE_PULUMI_HANG_RESOURCE",
        "FAKE_PULUMI_STALE_LOCK",
        "FAKE_PULUMI_DRIFT",
    ):
        monkeypatch.delenv(var, raising=False)
    return tmp_path
