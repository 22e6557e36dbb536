"""`register` and `ci-account` take `--credentials-from-env` with deploy's meaning: the
deployment's own Secret Manager secrets win unless the flag is given."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.fakes.gcp_secrets import FakeSecretManager
from tests.support.register_fixtures import make_cfg, write_outputs
from zenml_gcp_gitops.errors import UserError


class Stop(UserError):
    """Ends the command once the login it would use is known."""


@pytest.fixture
def used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[list[Any], Path]:
    import zenml_gcp_gitops.cli.zenml as zcli
    import zenml_gcp_gitops.zenml.session as session

    cfg = make_cfg("flagenv")
    sm = FakeSecretManager()
    sm.seed(
        cfg.names.secrets["zenml_admin"],
        json.dumps({"username": "admin", "password": "stack-admin-Pw"}),
    )
    sm.seed(
        cfg.names.secrets["mlflow_auth"],
        json.dumps({"username": "stack-ml", "password": "stack-mlflow-Pw"}),
    )
    monkeypatch.setattr(zcli, "SECRET_ACCESS_FACTORY", lambda project, labels: sm)
    monkeypatch.delenv("ZENML_STORE_API_KEY", raising=False)
    monkeypatch.setenv("ZENML_STORE_USERNAME", "me")
    monkeypatch.setenv("ZENML_STORE_PASSWORD", "personal-zen-Pw")
    seen: list[Any] = []

    def connect(url: str, credentials: Any, **kw: Any) -> Any:
        seen.append(credentials)
        raise Stop("stopped before talking to a server")

    monkeypatch.setattr(session, "connect", connect)
    return seen, write_outputs(tmp_path / "outputs.json", cfg)


@pytest.mark.parametrize(
    "command",
    [
        ["register"],
        ["ci-account", "create"],
        ["ci-account", "show"],
        ["ci-account", "delete", "-y"],
    ],
)
def test_the_flag_picks_the_environment_like_deploy(
    used: tuple[list[Any], Path], command: list[str]
) -> None:
    from zenml_gcp_gitops.cli import cli

    seen, outputs = used
    # no --zenml-url: the server is the one the outputs describe, so its own secret wins
    res = CliRunner().invoke(cli, [*command, "--outputs", str(outputs)])
    assert "stopped before talking" in res.output, res.output
    assert (seen[-1].username, seen[-1].password) == ("admin", "stack-admin-Pw")
    res = CliRunner().invoke(cli, [*command, "--outputs", str(outputs), "--credentials-from-env"])
    assert "stopped before talking" in res.output, res.output
    assert (seen[-1].username, seen[-1].password) == ("me", "personal-zen-Pw")
    assert "Pw" not in res.output
