"""The deployment's own secrets win over logins that happen to be in the environment."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fakes.gcp_secrets import FakeSecretManager
from tests.support.register_fixtures import make_cfg, outputs_dict
from zenml_gcp_gitops.outputs import InfraOutputs
from zenml_gcp_gitops.phases.base import PhaseContext
from zenml_gcp_gitops.phases.register import admin_credentials, mlflow_credentials

SECRET_VALUES = ("stack-mlflow-Pw", "stack-admin-Pw", "personal-Pw", "personal-zen-Pw")


class Notes:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def step(self, message: str) -> None:
        self.lines.append(message)

    def progress(self, *a: Any) -> None:
        pass

    def log(self, line: str) -> None:
        self.lines.append(line)


def _ctx(monkeypatch: pytest.MonkeyPatch, **options: Any) -> tuple[PhaseContext, Notes]:
    cfg = make_cfg("prec")
    sm = FakeSecretManager()
    sm.seed(
        cfg.names.secrets["mlflow_auth"],
        json.dumps({"username": "stack-ml", "password": "stack-mlflow-Pw"}),
    )
    sm.seed(
        cfg.names.secrets["zenml_admin"],
        json.dumps({"username": "admin", "password": "stack-admin-Pw"}),
    )
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "me")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "personal-Pw")
    monkeypatch.delenv("ZENML_STORE_API_KEY", raising=False)
    monkeypatch.setenv("ZENML_STORE_USERNAME", "me")
    monkeypatch.setenv("ZENML_STORE_PASSWORD", "personal-zen-Pw")
    notes = Notes()
    ctx = PhaseContext(cfg=cfg, options={"secret_manager": sm, **options}, reporter=notes)
    ctx._infra = InfraOutputs.from_mapping(outputs_dict(cfg), source="test")
    return ctx, notes


def test_the_stacks_secrets_win_and_the_choice_is_stated(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, notes = _ctx(monkeypatch)
    assert mlflow_credentials(ctx) == ("stack-ml", "stack-mlflow-Pw")
    creds = admin_credentials(ctx)
    assert (creds.username, creds.password) == ("admin", "stack-admin-Pw")
    said = "\n".join(notes.lines)
    assert "MLFLOW_TRACKING_USERNAME/PASSWORD in the environment differ and were ignored" in said
    assert "ZENML_STORE_*" in said and "--credentials-from-env" in said
    assert not any(v in said for v in SECRET_VALUES)


def test_environment_logins_only_when_asked_or_for_a_foreign_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx, _ = _ctx(monkeypatch, credentials_from_env=True)
    assert mlflow_credentials(ctx) == ("me", "personal-Pw")
    assert admin_credentials(ctx).password == "personal-zen-Pw"
    ctx, _ = _ctx(monkeypatch, zenml_url="https://zenml.elsewhere.example")
    assert admin_credentials(ctx).password == "personal-zen-Pw"
    # the same login in both places: nothing to say
    ctx, notes = _ctx(monkeypatch)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "stack-ml")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "stack-mlflow-Pw")
    assert mlflow_credentials(ctx) == ("stack-ml", "stack-mlflow-Pw")
    assert notes.lines == []
