"""Cluster credentials built in memory: endpoint + CA from the outputs, a refreshing token."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from zenml_gcp_gitops.errors import UserError
from zenml_gcp_gitops.gitops import kube as K
from zenml_gcp_gitops.outputs import InfraOutputs

EXAMPLE = Path(__file__).resolve().parents[2] / "argocd" / "example"


def outputs() -> InfraOutputs:
    return InfraOutputs.model_validate(json.loads((EXAMPLE / "outputs.json").read_text()))


class FakeCreds:
    def __init__(self) -> None:
        self.token: str | None = None
        self.expiry: datetime | None = None
        self.refreshes = 0

    @property
    def valid(self) -> bool:
        return self.token is not None

    def refresh(self, request: Any) -> None:
        self.refreshes += 1
        self.token = f"token-{self.refreshes}"
        self.expiry = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None)  # naive UTC


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> FakeCreds:
    import google.auth

    fake = FakeCreds()
    monkeypatch.setattr(google.auth, "default", lambda scopes=None: (fake, "acme-ml-prod"))
    return fake


def test_client_uses_endpoint_ca_and_a_refreshing_token(
    creds: FakeCreds, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    out = outputs()
    client = K.api_client_for(out)
    conf = client.configuration
    assert conf.host == f"https://{out.cluster_endpoint}"
    assert Path(conf.ssl_ca_cert).read_bytes() == base64.b64decode(out.cluster_ca_certificate)
    assert conf.get_api_key_with_prefix("authorization") == "Bearer token-1"
    assert (
        conf.get_api_key_with_prefix("authorization") == "Bearer token-1"
    )  # still valid: no refresh
    creds.expiry = (datetime.now(UTC) + timedelta(seconds=60)).replace(
        tzinfo=None
    )  # about to expire
    assert conf.get_api_key_with_prefix("authorization") == "Bearer token-2"
    assert creds.refreshes == 2
    assert not (tmp_path / "home" / ".kube").exists()  # nothing written to ~/.kube


def test_no_google_credentials_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import google.auth
    import google.auth.exceptions

    def fail(scopes: Any = None) -> Any:
        raise google.auth.exceptions.DefaultCredentialsError("none")

    monkeypatch.setattr(google.auth, "default", fail)
    with pytest.raises(UserError, match="no Google credentials"):
        K.api_client_for(outputs())


def test_write_kubeconfig_merges_a_context_without_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "other",
                "contexts": [{"name": "other", "context": {}}],
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(path))
    out = outputs()
    K.write_kubeconfig(out, "gke_acme")
    K.write_kubeconfig(out, "gke_acme")  # idempotent: no duplicates
    data = yaml.safe_load(path.read_text())
    assert [c["name"] for c in data["contexts"]] == ["other", "gke_acme"]
    assert data["current-context"] == "other"  # the user's choice is kept
    user = next(u for u in data["users"] if u["name"] == "gke_acme")["user"]
    assert user["exec"]["command"] == "gke-gcloud-auth-plugin" and "token" not in user
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_unchanged_ignores_what_the_server_bumps_on_every_write() -> None:
    live = {"metadata": {"name": "a", "resourceVersion": "1", "managedFields": [1]}, "data": {}}
    same = {"metadata": {"name": "a", "resourceVersion": "2", "managedFields": [2]}, "data": {}}
    assert K._comparable(live) == K._comparable(same)
    assert K._comparable(live) != K._comparable({**same, "data": {"k": "v"}})


def test_url_reachable_reads_status_codes() -> None:
    import http.server
    import threading

    from zenml_gcp_gitops.gitops.health import url_reachable

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response({"/ok": 200, "/auth": 401, "/down": 503}[self.path])
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        assert url_reachable(base + "/ok") is True
        assert url_reachable(base + "/auth") is True  # answering, just behind auth
        assert url_reachable(base + "/down") is False
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert url_reachable(f"http://127.0.0.1:{server.server_port}/ok", timeout=1) is False


def test_argocd_command_without_a_deployment_is_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from zenml_gcp_gitops.cli import cli

    result = CliRunner().invoke(
        cli, ["argocd", "--project", "acme-ml-prod", "--region", "europe-west4", "--state", "local"]
    )
    assert result.exit_code == 1
    assert "no deployed cluster recorded" in result.output and "Traceback" not in result.output
