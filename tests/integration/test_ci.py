"""The CI service account and API key, against a real ZenML server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from click.testing import CliRunner

from tests.fakes.gcp_secrets import FakeSecretManager
from tests.fakes.gh import gh_calls, install_fake_gh
from tests.support.register_fixtures import admin_store, make_cfg, make_outputs, shared_server
from tests.support.zenml_server import ZenServer
from zenml_gcp_gitops.zenml.apply import apply_stack_spec, count_objects
from zenml_gcp_gitops.zenml.ci_account import ci_status, delete_ci_account, ensure_ci_account
from zenml_gcp_gitops.zenml.session import Credentials
from zenml_gcp_gitops.zenml.stack_spec import gcp_stack_spec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> ZenServer:
    return shared_server(request)


@pytest.fixture(scope="module")
def store(server: ZenServer) -> Any:
    return admin_store(server)


@pytest.fixture
def fake_sm(monkeypatch: pytest.MonkeyPatch) -> FakeSecretManager:
    from zenml_gcp_gitops.cli import zenml as zcli

    sm = FakeSecretManager()
    monkeypatch.setattr(zcli, "SECRET_ACCESS_FACTORY", lambda project, labels: sm)
    return sm


@pytest.fixture
def cli_env(server: ZenServer, monkeypatch: pytest.MonkeyPatch, tmp_path) -> Any:
    """Admin credentials in env, a fake `gh` first on PATH (logged out unless a test says so)."""
    monkeypatch.delenv("ZENML_STORE_API_KEY", raising=False)
    monkeypatch.setenv("ZENML_STORE_USERNAME", server.username)
    monkeypatch.setenv("ZENML_STORE_PASSWORD", server.password)
    bindir = tmp_path / "bin"
    install_fake_gh(bindir, logged_in=False)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return bindir


def _login_ok(url: str, key: str) -> bool:
    """Does the server accept `key`? The same login request `connect` makes, alone."""
    import requests

    r = requests.post(url + "/api/v1/login", data=Credentials(api_key=key).login_form(), timeout=30)
    if r.status_code in (401, 403):
        return False
    r.raise_for_status()
    return True


def _ci(*args: str) -> Any:
    from zenml_gcp_gitops.cli import cli

    return CliRunner().invoke(cli, ["ci-account", *args])


def test_create_is_idempotent_and_stores_the_key(
    server: ZenServer, cli_env, fake_sm, store
) -> None:
    base = ["--project", "zgg-test-proj", "--region", "europe-west4", "--name", "ci-create",
            "--zenml-url", server.url, "--output", "json"]  # fmt: skip
    res = _ci("create", *base)
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert set(data) == {
        "service_account",
        "api_key_name",
        "secret_id",
    }  # no key without --show-key
    assert data["service_account"]["name"] == "ci-create-ci"
    assert data["api_key_name"] == "ci"
    assert data["secret_id"] == "ci-create-ci-zenml-api-key"
    stored = fake_sm.enabled_values("ci-create-ci-zenml-api-key")
    assert len(stored) == 1 and stored[0].startswith("ZENKEY_")
    assert stored[0] not in res.output
    assert _login_ok(server.url, stored[0])

    before = count_objects(store)
    again = _ci("create", *base)
    assert again.exit_code == 0, again.output
    assert json.loads(again.output) == data
    assert (
        len(fake_sm.enabled_values("ci-create-ci-zenml-api-key")) == 1
    )  # key kept, no new version
    assert count_objects(store) == before

    shown = _ci("show", *base)
    assert shown.exit_code == 0 and json.loads(shown.output) == data
    st = ci_status(store, make_cfg("ci-create"))
    assert st["healthy"] and st["api_key"]["active"] and st["api_key"]["age_days"] < 1


def test_key_from_a_separate_process_lists_stack_and_components(server: ZenServer, store) -> None:
    cfg = make_cfg("ci-remote")
    spec = gcp_stack_spec(cfg, make_outputs(cfg), mlflow_username="u", mlflow_password="p")
    apply_stack_spec(store, spec)
    result = ensure_ci_account(store, cfg)
    assert result.api_key
    script = textwrap.dedent(
        """
        import json
        from zenml.client import Client
        c = Client()
        stack = c.get_stack("ci-remote")
        comps = {str(t): [c.get_stack_component(t, x.id).name for x in v][0]
                 for t, v in stack.components.items()}
        print(json.dumps({"stack": stack.name, "components": comps,
                          "user": c.active_user.name}))
        """
    )
    env = server.client_env(ZENML_STORE_URL=server.url, ZENML_STORE_API_KEY=result.api_key)
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["stack"] == "ci-remote"
    assert got["user"] == "ci-remote-ci"
    assert got["components"] == {t: c.name for t, c in spec.components.items()}


def test_rotation_with_retain_window(server: ZenServer, store) -> None:
    cfg = make_cfg("ci-rotate")
    sm = FakeSecretManager()
    k1 = ensure_ci_account(store, cfg, secrets=sm).api_key
    assert k1
    r2 = ensure_ci_account(store, cfg, secrets=sm, rotate=True, retain_minutes=30)
    k2 = r2.api_key
    assert k2 and k2 != k1 and r2.rotated
    assert _login_ok(server.url, k1), "the old key must work within the retain window"
    assert _login_ok(server.url, k2)
    assert sm.enabled_values(cfg.names.secrets["ci_api_key"]) == [k1, k2]  # a new version

    k3 = ensure_ci_account(store, cfg, secrets=sm, rotate=True, retain_minutes=0).api_key
    assert k3
    assert not _login_ok(server.url, k2), "with --retain-minutes 0 the old key stops at once"
    assert _login_ok(server.url, k3)


def test_cli_rotate_show_key_and_delete(server: ZenServer, cli_env, fake_sm, store) -> None:
    base = ["--project", "zgg-test-proj", "--region", "europe-west4", "--name", "ci-cli",
            "--zenml-url", server.url, "--output", "json"]  # fmt: skip
    assert _ci("create", *base).exit_code == 0
    first = fake_sm.read("ci-cli-ci-zenml-api-key")
    res = _ci("rotate", *base, "--show-key", "--retain-minutes", "0")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert set(data) == {"service_account", "api_key_name", "secret_id", "api_key"}
    assert data["secret_id"] is None  # shown once instead of stored
    assert fake_sm.read("ci-cli-ci-zenml-api-key") == first
    assert _login_ok(server.url, data["api_key"]) and not _login_ok(server.url, first or "")

    res = _ci("delete", *base, "--yes")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["service_account"]["id"] == data["service_account"]["id"]
    assert not _login_ok(server.url, data["api_key"])
    assert fake_sm.read("ci-cli-ci-zenml-api-key") is None  # stored versions destroyed
    assert ci_status(store, make_cfg("ci-cli"))["service_account"] is None
    missing = _ci("show", *base)
    assert missing.exit_code == 1 and "there is no service account ci-cli-ci" in missing.output


def test_bogus_key_is_one_clear_line(server: ZenServer, monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("ZENML_STORE_USERNAME", raising=False)
    monkeypatch.delenv("ZENML_STORE_PASSWORD", raising=False)
    monkeypatch.setenv("ZENML_STORE_API_KEY", "ZENKEY_bogus")
    res = _ci("show", "--project", "zgg-test-proj", "--region", "europe-west4", "--name", "ci-bogus",
              "--zenml-url", server.url)  # fmt: skip
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    errors = [x for x in res.output.splitlines() if x.startswith("Error:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"Error: the ZenML server at {server.url} rejected the API key")
    assert "rotated away" in res.output  # the hint says what to check


def test_github_secrets_via_gh_or_printed_commands(server: ZenServer, store, tmp_path) -> None:
    from zenml_gcp_gitops.zenml.github import GhClient

    cfg = make_cfg("ci-gh")
    bindir = tmp_path / "bin"
    gh = GhClient(str(install_fake_gh(bindir, logged_in=True)))
    sm = FakeSecretManager()
    r = ensure_ci_account(
        store, cfg, secrets=sm, github_repo="acme/ml", zenml_url=server.url, gh=gh
    )
    assert r.github == "set"
    sets = [c for c in gh_calls(bindir) if c["args"][:2] == ["secret", "set"]]
    assert [c["args"][2] for c in sets] == ["ZENML_STORE_URL", "ZENML_STORE_API_KEY"]
    assert all(c["args"][3:] == ["--repo", "acme/ml"] for c in sets)
    assert sets[0]["stdin"] == server.url and sets[1]["stdin"] == r.api_key
    assert all(r.api_key not in " ".join(c["args"]) for c in gh_calls(bindir))  # never in argv

    install_fake_gh(bindir, logged_in=False)
    calls_before = len(gh_calls(bindir))
    r2 = ensure_ci_account(
        store, cfg, secrets=sm, github_repo="acme/ml", zenml_url=server.url, gh=gh
    )
    assert r2.github == "manual"
    assert not [c for c in gh_calls(bindir)[calls_before:] if c["args"][:2] == ["secret", "set"]]
    text = "\n".join(r2.log)
    assert f"gh secret set ZENML_STORE_URL --repo acme/ml --body {server.url}" in text
    assert (
        "gcloud secrets versions access latest --secret=ci-gh-ci-zenml-api-key "
        "--project=zgg-test-proj | gh secret set ZENML_STORE_API_KEY --repo acme/ml" in text
    )
    assert r.api_key not in text
    assert delete_ci_account(store, cfg, secrets=sm)


class _BrokenSecretManager(FakeSecretManager):
    def add_version(self, secret_id: str, value: str) -> str:
        from zenml_gcp_gitops.errors import UserError

        raise UserError(f"cannot add a version to secret {secret_id}: PermissionDenied")


def test_a_key_that_cannot_be_stored_is_not_left_behind(server: ZenServer, store) -> None:
    cfg = make_cfg("ci-nostore")
    before = count_objects(store)
    with pytest.raises(Exception, match="PermissionDenied"):
        ensure_ci_account(store, cfg, secrets=_BrokenSecretManager())
    assert count_objects(store) == before  # the fresh account and key were removed again

    sm = FakeSecretManager()
    k1 = ensure_ci_account(store, cfg, secrets=sm).api_key
    assert k1
    with pytest.raises(Exception, match="old key keeps working for 30 min") as err:
        ensure_ci_account(
            store, cfg, secrets=_BrokenSecretManager(), rotate=True, retain_minutes=30
        )
    assert "ZENKEY_" not in str(err.value)
    assert _login_ok(server.url, k1)  # CI keeps running on the stored key
    delete_ci_account(store, cfg, secrets=sm)


def test_a_key_that_was_never_stored_is_rotated_into_secret_manager(
    server: ZenServer, store
) -> None:
    cfg = make_cfg("ci-restore")
    shown = ensure_ci_account(store, cfg, secrets=FakeSecretManager(), store_secret=False).api_key
    assert shown  # --show-key: printed, not stored
    sm = FakeSecretManager()
    r = ensure_ci_account(store, cfg, secrets=sm, retain_minutes=0)
    assert r.rotated and r.api_key and r.api_key != shown
    assert sm.enabled_values(cfg.names.secrets["ci_api_key"]) == [r.api_key]
    assert _login_ok(server.url, r.api_key) and not _login_ok(server.url, shown)
    again = ensure_ci_account(store, cfg, secrets=sm)  # stored now: kept
    assert not again.rotated and again.api_key is None
    delete_ci_account(store, cfg, secrets=sm)


def test_rotation_retires_the_old_key_version(server: ZenServer, cli_env, fake_sm, store) -> None:
    """No stored key outlives its key: revoked at once with --retain-minutes 0, disabled when
    the retain window ends, destroyed a grace period later; `show` says which is which."""
    base = ["--project", "zgg-test-proj", "--region", "europe-west4", "--name", "ci-retire",
            "--zenml-url", server.url]  # fmt: skip
    sid = "ci-retire-ci-zenml-api-key"
    assert _ci("create", *base).exit_code == 0
    res = _ci("rotate", *base, "--retain-minutes", "30")
    assert res.exit_code == 0, res.output
    assert fake_sm.states(sid) == ["ENABLED", "ENABLED"]  # the old key still works for 30 min
    shown = _ci("show", *base)
    assert shown.exit_code == 0, shown.output
    assert "v1 enabled until" in shown.output and "v2 enabled (current)" in shown.output

    res = _ci("rotate", *base, "--retain-minutes", "0")
    assert res.exit_code == 0, res.output
    # v2's key is revoked now, v1's key died with the previous rotation's window
    assert fake_sm.states(sid) == ["DISABLED", "DISABLED", "ENABLED"]
    assert "disabled key version 2" in res.output
    key = fake_sm.read(sid)
    assert key and _login_ok(server.url, key)
    shown = _ci("show", *base)
    assert "v1 disabled, destroyed after" in shown.output
    assert "v3 enabled (current)" in shown.output

    # a grace period later, `status` (ci_status) destroys the disabled versions
    from datetime import UTC, datetime, timedelta

    from zenml_gcp_gitops.gcp.key_versions import GRACE

    st = ci_status(
        store,
        make_cfg("ci-retire"),
        secrets=fake_sm,
        now=datetime.now(UTC) + GRACE - timedelta(minutes=5),
    )
    assert fake_sm.states(sid) == ["DISABLED", "DISABLED", "ENABLED"]  # not quite yet
    later = datetime.now(UTC) + GRACE + timedelta(minutes=5)
    st = ci_status(store, make_cfg("ci-retire"), secrets=fake_sm, now=later)
    assert fake_sm.states(sid) == ["DESTROYED", "DESTROYED", "ENABLED"]
    assert [v["version"] for v in st["key_versions"]] == [3]
    assert fake_sm.read(sid) == key  # the current key is never touched


def test_ci_secrets_carry_the_active_stack_id(server: ZenServer, store, tmp_path) -> None:
    from zenml_gcp_gitops.zenml.apply import find_stack_id
    from zenml_gcp_gitops.zenml.github import GhClient

    cfg = make_cfg("ci-stackid")
    spec = gcp_stack_spec(cfg, make_outputs(cfg), mlflow_username="u", mlflow_password="p")
    stack_id = apply_stack_spec(store, spec).stack.id
    assert find_stack_id(store, cfg.names.zenml_stack) == stack_id
    bindir = tmp_path / "bin"
    gh = GhClient(str(install_fake_gh(bindir, logged_in=True)))
    sm = FakeSecretManager()
    args: dict[str, Any] = {"github_repo": "acme/ml", "zenml_url": server.url, "gh": gh}
    ensure_ci_account(store, cfg, secrets=sm, stack_id=stack_id, **args)
    sets = {
        c["args"][2]: c["stdin"] for c in gh_calls(bindir) if c["args"][:2] == ["secret", "set"]
    }
    assert sets["ZENML_ACTIVE_STACK_ID"] == stack_id

    install_fake_gh(bindir, logged_in=False)
    res = ensure_ci_account(store, cfg, secrets=sm, stack_id=stack_id, **args)
    assert f"gh secret set ZENML_ACTIVE_STACK_ID --repo acme/ml --body {stack_id}" in "\n".join(
        res.log
    )


def _no_google_env(server: ZenServer, home: Any, **extra: str) -> dict[str, str]:
    """A process with no Google credentials of any kind: no ADC file, no gcloud config, and a
    metadata server that refuses at once (so the lookup fails instead of waiting)."""
    env = server.client_env(**extra)
    for k in list(env):
        if k.startswith(("GOOGLE_", "CLOUDSDK_", "GCE_")):
            del env[k]
    env.update(
        HOME=str(home),
        CLOUDSDK_CONFIG=str(home / "gcloud"),
        GCE_METADATA_HOST="127.0.0.1:9",
        GCE_METADATA_IP="127.0.0.1:9",
        NO_GCE_CHECK="True",
        ZENML_GCP_GITOPS_HOME=str(home / "zgg"),
    )
    return env


def test_show_key_without_google_credentials_prints_a_key_that_logs_in(
    server: ZenServer, tmp_path
) -> None:
    """`--show-key` needs no Secret Manager: the key is printed although the stored versions
    cannot be retired, and it logs in from another process. (It used to fail in Secret
    Manager after ZenML had made the key, and every re-run kept the lost key.)"""
    from zenml_gcp_gitops.cli import zenml as zcli

    assert zcli.SECRET_ACCESS_FACTORY is None  # the real Secret Manager client is used
    repo_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = _no_google_env(
        server,
        tmp_path,
        ZENML_STORE_USERNAME=server.username,
        ZENML_STORE_PASSWORD=server.password,
        PYTHONPATH=os.pathsep.join(p for p in sys.path if p) + os.pathsep + repo_root,
    )
    proc = subprocess.run(
        [sys.executable, "-m", "zenml_gcp_gitops", "ci-account", "create", "--show-key",
         "--credentials-from-env", "--project", "zgg-test-proj", "--region", "europe-west4",
         "--name", "ci-nocreds", "--zenml-url", server.url],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    key = lines[lines.index("API key (shown once, store it now):") + 1].strip()
    assert "skipped retiring stored key versions in Secret Manager" in proc.stdout
    # the next step: what an environment that runs pipelines with this key installs
    assert "zenml-gcp-gitops==" in proc.stdout.split("a pipeline environment", 1)[1]

    login = subprocess.run(
        [sys.executable, "-c",
         "from zenml.client import Client; print(Client().active_user.name)"],
        env=_no_google_env(server, tmp_path, ZENML_STORE_URL=server.url, ZENML_STORE_API_KEY=key),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert login.returncode == 0, login.stderr[-2000:]
    assert login.stdout.strip().splitlines()[-1] == "ci-nocreds-ci"
