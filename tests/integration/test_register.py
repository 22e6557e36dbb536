"""`register` against a real ZenML server (uvicorn + SQLite, OAuth2 password auth)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.support.register_fixtures import (
    FAKE_SA_KEY,
    admin_store,
    make_cfg,
    make_outputs,
    shared_server,
    write_outputs,
)
from tests.support.typed_options import typed
from tests.support.zenml_server import ZenServer, free_port, start_zenml_server
from zenml_gcp_gitops.errors import PhaseError, ServiceUnavailable, UserError
from zenml_gcp_gitops.zenml.apply import (
    ForeignObjectError,
    apply_stack_spec,
    count_objects,
    stack_status,
)
from zenml_gcp_gitops.zenml.deregister import delete_stack_spec
from zenml_gcp_gitops.zenml.session import AuthError, Credentials, ServerTooOld, connect
from zenml_gcp_gitops.zenml.stack_spec import gcp_stack_spec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> ZenServer:
    return shared_server(request)


@pytest.fixture(scope="module")
def store(server: ZenServer) -> Any:
    return admin_store(server)


@pytest.fixture
def admin_env(server: ZenServer, monkeypatch: pytest.MonkeyPatch) -> ZenServer:
    monkeypatch.delenv("ZENML_STORE_API_KEY", raising=False)
    monkeypatch.setenv("ZENML_STORE_USERNAME", server.username)
    monkeypatch.setenv("ZENML_STORE_PASSWORD", server.password)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "mlflow-user")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "mlflow-S3cret-value")
    return server


def test_register_values_labels_and_secret_refs(store: Any) -> None:
    cfg = make_cfg("reg-values")
    spec = gcp_stack_spec(
        cfg, make_outputs(cfg), mlflow_username="ml-user", mlflow_password="ml-Pa55"
    )
    result = apply_stack_spec(store, spec)
    # secret, connector, 5 components, stack (the flavor is shared by every test's stack)
    assert len([x for x in result.created if not x.startswith("flavor:")]) == 8

    stack = store.get_stack(result.stack.id)
    assert stack.name == "reg-values"
    assert stack.labels == spec.labels
    comps = {str(t): v[0] for t, v in stack.components.items()}
    assert set(comps) == set(spec.components)
    for ctype, want in spec.components.items():
        got = store.get_stack_component(comps[ctype].id)
        assert got.name == want.name
        assert got.flavor_name == want.flavor
        assert dict(got.configuration) == want.configuration
        assert got.labels == spec.labels
        if want.connector_resource_type:
            assert got.connector is not None and got.connector.name == "reg-values-gcp"
            assert got.connector_resource_id == want.connector_resource_id
        else:
            assert got.connector is None
    tracker = store.get_stack_component(comps["experiment_tracker"].id)
    assert (
        tracker.configuration["tracking_password"] == "{{reg-values-mlflow-credentials.password}}"
    )
    assert "ml-Pa55" not in json.dumps(dict(tracker.configuration))
    # the values live in ZenML's secret store, readable by the (non-private) stack users
    from zenml.models import SecretFilter

    secret = store.list_secrets(
        SecretFilter(name="reg-values-mlflow-credentials"), hydrate=True
    ).items[0]
    full = store.get_secret(secret.id)
    from zenml_gcp_gitops.zenml.secrets import OWNER_KEY, owner_mark

    assert {k: v.get_secret_value() for k, v in full.values.items()} == {
        "username": "ml-user",
        "password": "ml-Pa55",
        OWNER_KEY: owner_mark(spec),  # ZenML secrets have no labels
    }
    assert full.private is False
    conn = store.get_service_connector(result.connector.id) if result.connector else None
    assert (
        conn is not None
        and conn.auth_method == "implicit"
        and conn.connector_type.connector_type == "gcp"
    )
    assert conn.labels == spec.labels
    assert dict(conn.configuration)["project_id"] == cfg.project
    assert result.public_dict()["connector"] == {
        "id": str(conn.id),
        "name": "reg-values-gcp",
        "auth_method": "implicit",
    }
    status = stack_status(store, spec)
    assert status["healthy"] and status["missing"] == []


def test_second_run_is_a_noop_and_change_updates_in_place(store: Any) -> None:
    cfg = make_cfg("reg-idem")
    spec = gcp_stack_spec(cfg, make_outputs(cfg), mlflow_username="u", mlflow_password="p")
    first = apply_stack_spec(store, spec)
    before = count_objects(store)
    second = apply_stack_spec(store, spec)
    assert count_objects(store) == before
    assert second.created == [] and second.updated == []
    assert second.public_dict() == first.public_dict()

    # a new hostname and a new MLflow password: updated in place, same IDs, no new objects
    spec2 = gcp_stack_spec(
        cfg,
        make_outputs(cfg, mlflow_host="mlflow.ml.example.com"),
        mlflow_username="u",
        mlflow_password="p2",
    )
    third = apply_stack_spec(store, spec2)
    assert count_objects(store) == before
    assert third.public_dict() == first.public_dict()
    assert sorted(third.updated) == [
        "experiment_tracker:reg-idem-mlflow",
        "secret:reg-idem-mlflow-credentials",
    ]
    tracker = store.get_stack_component(third.components["experiment_tracker"].id)
    assert tracker.configuration["tracking_uri"] == "https://mlflow.ml.example.com"


def test_foreign_component_is_refused_unless_adopted(store: Any) -> None:
    from zenml.models import ComponentRequest

    cfg = make_cfg("reg-foreign")
    spec = gcp_stack_spec(cfg, make_outputs(cfg), mlflow_username="u", mlflow_password="p")
    foreign = store.create_stack_component(
        ComponentRequest(
            name="reg-foreign-artifacts", type="artifact_store", flavor="gcp",
            configuration={"path": "gs://someone-elses-bucket"}, labels={"team": "other"},
        )
    )  # fmt: skip
    before = count_objects(store)
    with pytest.raises(ForeignObjectError, match="artifact_store 'reg-foreign-artifacts'"):
        apply_stack_spec(store, spec)
    assert count_objects(store) == before  # refused before any write
    assert (
        store.get_stack_component(foreign.id).configuration["path"] == "gs://someone-elses-bucket"
    )

    adopted = apply_stack_spec(store, spec, adopt=True)
    assert adopted.components["artifact_store"].id == str(foreign.id)
    got = store.get_stack_component(foreign.id)
    assert got.configuration["path"] == f"gs://{cfg.names.artifact_bucket}"
    assert got.labels["team"] == "other" and got.labels["zenml:deployment"] == "gcp-gitops"


class _FailingStore:
    """Delegates to the real store but fails one call, like a dropped connection midway."""

    def __init__(self, inner: Any, fail_on: str) -> None:
        self._inner, self._fail_on = inner, fail_on

    def __getattr__(self, name: str) -> Any:
        if name == self._fail_on:

            def boom(*args: Any, **kwargs: Any) -> Any:
                raise ConnectionError("connection reset by peer")

            return boom
        return getattr(self._inner, name)


def test_failure_midway_leaves_nothing_half_registered(store: Any) -> None:
    cfg = make_cfg("reg-rollback")
    spec = gcp_stack_spec(cfg, make_outputs(cfg), mlflow_username="u", mlflow_password="p")
    before = count_objects(store)
    with pytest.raises(PhaseError, match="nothing was left behind"):
        apply_stack_spec(_FailingStore(store, "create_stack"), spec)
    assert count_objects(store) == before
    assert stack_status(store, spec)["missing"]  # nothing of it exists

    # an update that fails midway is put back as it was
    apply_stack_spec(store, spec)
    spec2 = gcp_stack_spec(
        cfg,
        make_outputs(cfg, mlflow_host="mlflow.other.example.com"),
        mlflow_username="u",
        mlflow_password="p",
    )
    with pytest.raises(PhaseError):
        apply_stack_spec(_FailingStore(store, "update_stack"), _with_new_orchestrator(spec2))
    r = apply_stack_spec(store, spec)
    assert r.updated == [] and r.created == []  # the failed run restored the old values


def _with_new_orchestrator(spec: Any) -> Any:
    comps = dict(spec.components)
    comps["orchestrator"] = comps["orchestrator"].model_copy(update={"name": "reg-rollback-orch2"})
    return spec.model_copy(update={"components": comps})


def test_service_account_connector_keeps_the_key_in_zenml_secrets(store: Any) -> None:
    cfg = make_cfg("reg-sakey", connector_auth="service-account")
    spec = gcp_stack_spec(cfg, make_outputs(cfg), mlflow_username="u", mlflow_password="p")
    result = apply_stack_spec(store, spec)
    assert (
        result.connector is not None and result.connector.extra["auth_method"] == "service-account"
    )
    plain = store.get_service_connector(result.connector.id)  # not expanded: secrets masked
    assert FAKE_SA_KEY["private_key_id"] not in plain.model_dump_json()
    expanded = store.get_service_connector(result.connector.id, expand_secrets=True)
    key = dict(expanded.configuration)["service_account_json"]
    assert json.loads(key.get_secret_value())["private_key_id"] == FAKE_SA_KEY["private_key_id"]
    again = apply_stack_spec(store, spec)
    assert again.created == [] and again.updated == []
    assert delete_stack_spec(store, spec)
    assert stack_status(store, spec)["missing"]


def test_missing_secret_values_are_refused_before_any_write(store: Any) -> None:
    cfg = make_cfg("reg-nocreds")
    spec = gcp_stack_spec(cfg, make_outputs(cfg))  # no MLflow credentials known
    before = count_objects(store)
    with pytest.raises(UserError, match=r"reg-nocreds-mlflow-credentials\.username"):
        apply_stack_spec(store, spec)
    assert count_objects(store) == before


def test_cli_register_json_contract(admin_env: ZenServer, tmp_path) -> None:
    from zenml_gcp_gitops.cli import cli

    cfg = make_cfg("reg-cli")
    outputs = write_outputs(tmp_path / "outputs.json", cfg)
    args = ["register", "--outputs", str(outputs), "--zenml-url", admin_env.url, "--output", "json"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert set(data) == {"stack", "components", "connector"}
    assert set(data["stack"]) == {"id", "name"} and data["stack"]["name"] == "reg-cli"
    assert {t: set(v) for t, v in data["components"].items()} == {
        t: {"id", "name", "flavor"} for t in
        ("artifact_store", "container_registry", "orchestrator", "experiment_tracker", "image_builder")
    }  # fmt: skip
    assert set(data["connector"]) == {"id", "name", "auth_method"}
    assert "mlflow-S3cret-value" not in res.output
    res2 = CliRunner().invoke(cli, args)
    assert json.loads(res2.output) == data


def _one_line_error(res: Any) -> str:
    assert res.exit_code != 0
    assert "Traceback" not in res.output
    lines = [x for x in res.output.splitlines() if x.startswith("Error:")]
    assert len(lines) == 1, res.output
    return lines[0]


def test_wrong_password_and_unreachable_url(admin_env: ZenServer, tmp_path, monkeypatch) -> None:
    from zenml_gcp_gitops.cli import cli

    cfg = make_cfg("reg-bad")
    store = admin_store(admin_env)
    before = count_objects(store)
    outputs = write_outputs(tmp_path / "outputs.json", cfg)
    monkeypatch.setenv("ZENML_STORE_PASSWORD", "not-the-password")
    res = CliRunner().invoke(
        cli, ["register", "--outputs", str(outputs), "--zenml-url", admin_env.url]
    )
    assert "rejected the password for user 'admin'" in _one_line_error(res)

    dead = f"http://127.0.0.1:{free_port()}"
    res = CliRunner().invoke(
        cli, ["register", "--outputs", str(outputs), "--zenml-url", dead, "--timeout", "1"]
    )
    assert "is not healthy after 1s" in _one_line_error(res)
    assert count_objects(store) == before
    with pytest.raises(AuthError):
        connect(admin_env.url, Credentials(username="admin", password="nope"), timeout=5)


@pytest.fixture
def old_server() -> Iterator[str]:
    """A tiny HTTP server answering like a ZenML 0.50 server (/health, /api/v1/info)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'"OK"' if self.path == "/health" else json.dumps({"version": "0.50.0"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_too_old_server(old_server: str, tmp_path, monkeypatch) -> None:
    from zenml_gcp_gitops.cli import cli

    monkeypatch.setenv("ZENML_STORE_USERNAME", "admin")
    monkeypatch.setenv("ZENML_STORE_PASSWORD", "x")
    with pytest.raises(ServerTooOld, match=r"runs 0\.50\.0"):
        connect(old_server, Credentials(username="a", password="b"), timeout=5)
    outputs = write_outputs(tmp_path / "outputs.json", make_cfg("reg-old"))
    res = CliRunner().invoke(
        cli, ["register", "--outputs", str(outputs), "--zenml-url", old_server]
    )
    assert "runs 0.50.0" in _one_line_error(res)


def test_unreachable_raises_service_unavailable() -> None:
    with pytest.raises(ServiceUnavailable):
        connect(
            f"http://127.0.0.1:{free_port()}", Credentials(username="a", password="b"), timeout=0.5
        )


def test_phases_take_credentials_from_secret_manager(
    server: ZenServer, store: Any, monkeypatch
) -> None:
    """RegisterPhase/CiPhase as the engine runs them: URL from the gitops record, admin and
    MLflow logins from Secret Manager (the fake), no credentials in the environment."""
    from tests.fakes.gcp_secrets import FakeSecretManager
    from tests.support.register_fixtures import outputs_dict
    from zenml_gcp_gitops.phases.base import PhaseContext
    from zenml_gcp_gitops.phases.ci import CiPhase
    from zenml_gcp_gitops.phases.register import RegisterPhase

    for var in ("ZENML_STORE_API_KEY", "ZENML_STORE_USERNAME", "ZENML_STORE_PASSWORD",
                "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    cfg = make_cfg("reg-phase")
    sm = FakeSecretManager()
    sm.seed(
        cfg.names.secrets["zenml_admin"],
        json.dumps({"username": server.username, "password": server.password}),
    )
    sm.seed(
        cfg.names.secrets["mlflow_auth"],
        json.dumps({"username": "mlflow", "password": "mlflow-Pw-1"}),
    )
    ctx = PhaseContext(
        cfg=cfg,
        recorded={"infra": {"outputs": outputs_dict(cfg)}, "gitops": {"zenml_url": server.url}},
        **typed({"secret_manager": sm, "timeout": 30}),
    )
    rec = RegisterPhase().run(ctx)
    assert rec["zenml_url"] == server.url and rec["stack"]["name"] == "reg-phase"
    assert "mlflow-Pw-1" not in json.dumps(rec)
    # verified by default; this server has no GCP access, so the verdict is a reported failure
    assert rec["connector_verification"]["result"] == "failed"
    assert RegisterPhase().status(ctx)["healthy"] is True
    ci_rec = CiPhase().run(ctx)
    assert set(ci_rec) == {"service_account", "api_key_name", "secret_id"}
    key = sm.read(cfg.names.secrets["ci_api_key"])
    assert key and key not in json.dumps(ci_rec)
    st = CiPhase().status(ctx)
    assert st["healthy"] and st["api_key"]["active"]

    CiPhase().destroy(ctx)
    assert CiPhase().status(ctx)["service_account"] is None
    RegisterPhase().destroy(ctx)
    status = RegisterPhase().status(ctx)
    assert status["healthy"] is False and "stack:reg-phase" in status["missing"]

    sm.seed(cfg.names.secrets["zenml_admin"], "not json")
    with pytest.raises(PhaseError, match="is not JSON with username and password"):
        RegisterPhase().run(ctx)


def test_activate_logs_the_global_client_in_only_when_asked(server: ZenServer, tmp_path) -> None:
    """Fresh processes with their own ZENML_CONFIG_PATH: plain register leaves the client
    config alone; --activate points it at the server with the stack active."""
    import subprocess
    import sys

    cfg = make_cfg("reg-activate")
    outputs = write_outputs(tmp_path / "outputs.json", cfg)
    exe = str(Path(sys.executable).with_name("zenml-gcp-gitops"))
    env = server.client_env(
        ZENML_CONFIG_PATH=str(tmp_path / "zenml-config"),
        ZENML_STORE_USERNAME=server.username,
        ZENML_STORE_PASSWORD=server.password,
        MLFLOW_TRACKING_USERNAME="u",
        MLFLOW_TRACKING_PASSWORD="p",
    )
    base = [exe, "register", "--outputs", str(outputs), "--zenml-url", server.url]
    probe = (
        "from zenml.config.global_config import GlobalConfiguration as G\n"
        "c = G().store_configuration\n"
        "print(c.type.value, c.url)\n"
    )
    clean = {k: v for k, v in env.items() if not k.startswith("ZENML_STORE_")}

    r = subprocess.run(base, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-1500:]
    # nothing written to the client's config dir: no config.yaml, no credentials.yaml
    cfg_dir = tmp_path / "zenml-config"
    assert not cfg_dir.exists() or not any(cfg_dir.iterdir())
    p = subprocess.run(
        [sys.executable, "-c", probe], env=clean, capture_output=True, text=True, timeout=120
    )
    last = p.stdout.strip().splitlines()[-1]  # (ZenML may log to stdout first)
    assert last.split()[0] == "sql", p.stdout + p.stderr[-800:]  # untouched: still local

    r = subprocess.run([*base, "--activate"], env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-1500:]
    probe += "from zenml.client import Client\nprint(Client().active_stack_model.name)\n"
    p = subprocess.run(
        [sys.executable, "-c", probe], env=clean, capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 0, p.stderr[-1500:]
    lines = p.stdout.strip().splitlines()
    assert (tmp_path / "zenml-config" / "credentials.yaml").exists()  # now logged in
    assert lines[-2] == f"rest {server.url}"
    assert lines[-1] == "reg-activate"


def test_verify_reports_the_servers_verdict_without_failing(admin_env: ZenServer, tmp_path) -> None:
    """The test server has no GCP access: the failed verification is reported, not fatal."""
    from zenml_gcp_gitops.cli import cli

    cfg = make_cfg("reg-verify")
    outputs = write_outputs(tmp_path / "outputs.json", cfg)
    res = CliRunner().invoke(
        cli, ["register", "--outputs", str(outputs), "--zenml-url", admin_env.url, "--verify"]
    )
    assert res.exit_code == 0, res.output
    assert "connector verification: failed" in res.output
    spec = gcp_stack_spec(cfg, make_outputs(cfg))
    status = stack_status(admin_store(admin_env), spec, verify=True)
    assert status["healthy"] is True
    assert status["connector"]["verification"]["result"] == "failed"


@pytest.mark.parametrize("key", [None, "[secret]"])  # absent, or masked as in a plan
def test_service_account_auth_without_a_key_is_refused_up_front(store: Any, key: Any) -> None:
    cfg = make_cfg("reg-nokey", connector_auth="service-account")
    spec = gcp_stack_spec(
        cfg, make_outputs(cfg, pipelines_sa_key=key), mlflow_username="u", mlflow_password="p"
    )
    before = count_objects(store)
    with pytest.raises(UserError, match="has no value for service_account_json"):
        apply_stack_spec(store, spec)
    assert count_objects(store) == before


def test_failed_run_puts_a_changed_connector_back(store: Any) -> None:
    """implicit -> service-account, failing at the stack: everything is as before."""
    cfg = make_cfg("reg-conn-undo")
    spec = gcp_stack_spec(cfg, make_outputs(cfg), mlflow_username="u", mlflow_password="p")
    first = apply_stack_spec(store, spec)
    cfg_sa = make_cfg("reg-conn-undo", connector_auth="service-account")
    spec_sa = gcp_stack_spec(cfg_sa, make_outputs(cfg_sa), mlflow_username="u", mlflow_password="p")
    spec_sa = _with_new_orchestrator(spec_sa)  # forces a stack update, which then fails
    before = count_objects(store)
    with pytest.raises(PhaseError, match="nothing was left behind"):
        apply_stack_spec(_FailingStore(store, "update_stack"), spec_sa)
    assert count_objects(store) == before  # the temporary connector and component are gone
    assert first.connector is not None
    conn = store.get_service_connector(first.connector.id, expand_secrets=True)
    assert conn.auth_method == "implicit"
    assert "service_account_json" not in dict(conn.configuration)
    again = apply_stack_spec(store, spec)
    assert again.created == [] and again.updated == []


def test_auth_or_flavor_change_replaces_in_place(store: Any) -> None:
    """ZenML can change neither a used connector's auth method nor a component's flavor:
    both are swapped for new objects under the same names, in the same stack."""
    cfg = make_cfg("reg-swap")
    spec = gcp_stack_spec(cfg, make_outputs(cfg), mlflow_username="u", mlflow_password="p")
    first = apply_stack_spec(store, spec)
    before = count_objects(store)

    cfg2 = make_cfg("reg-swap", connector_auth="service-account", image_builder="local")
    spec2 = gcp_stack_spec(cfg2, make_outputs(cfg2), mlflow_username="u", mlflow_password="p")
    second = apply_stack_spec(store, spec2)
    assert count_objects(store) == before  # replaced, not added
    assert second.stack.id == first.stack.id
    assert second.connector is not None and second.connector.name == "reg-swap-gcp"
    assert second.connector.extra["auth_method"] == "service-account"
    assert second.components["artifact_store"].id == first.components["artifact_store"].id
    builder = second.components["image_builder"]
    assert builder.name == "reg-swap-image-builder" and builder.extra["flavor"] == "local"
    assert builder.id != first.components["image_builder"].id
    stack = store.get_stack(second.stack.id)
    got = {str(t): (v[0].name, v[0].flavor_name) for t, v in stack.components.items()}
    assert got["image_builder"] == ("reg-swap-image-builder", "local")
    linked = store.get_stack_component(second.components["artifact_store"].id)
    assert linked.connector is not None and str(linked.connector.id) == second.connector.id
    again = apply_stack_spec(store, spec2)
    assert again.created == [] and again.updated == []
    assert again.public_dict() == second.public_dict()


def test_build_account_flavor_is_registered_once_and_used_by_the_stack(store: Any) -> None:
    """`register` registers our Cloud Build flavor as `zenml flavor register` would (from its
    import path, with its config schema), idempotently, and the image builder uses it with
    the build account from the outputs."""
    from zenml.models import FlavorFilter

    from zenml_gcp_gitops.zenml.stack_spec import BUILD_ACCOUNT_FLAVOR, BUILD_ACCOUNT_FLAVOR_SOURCE

    cfg = make_cfg("reg-flavor")
    spec = gcp_stack_spec(cfg, make_outputs(cfg), mlflow_username="u", mlflow_password="p")
    first = apply_stack_spec(store, spec)
    flavors = store.list_flavors(
        FlavorFilter(name=BUILD_ACCOUNT_FLAVOR, type="image_builder"), hydrate=True
    ).items
    assert len(flavors) == 1
    flavor = flavors[0]
    assert flavor.source == BUILD_ACCOUNT_FLAVOR_SOURCE and flavor.is_custom
    assert "service_account" in flavor.config_schema["required"]
    assert flavor.connector_type == "gcp"
    builder = store.get_stack_component(first.components["image_builder"].id)
    assert builder.flavor_name == BUILD_ACCOUNT_FLAVOR
    assert builder.configuration["service_account"] == cfg.names.sa_email("build")
    again = apply_stack_spec(store, spec)
    assert f"flavor:{BUILD_ACCOUNT_FLAVOR}" in again.unchanged
    assert again.created == [] and again.updated == []
    assert (
        len(store.list_flavors(FlavorFilter(name=BUILD_ACCOUNT_FLAVOR, type="image_builder")).items)
        == 1
    )
    # a schema written without an owner mark (0.1) is refreshed by this release, not duplicated
    from zenml.models import FlavorUpdate

    from zenml_gcp_gitops.flavors import OWNER_KEY

    store.update_flavor(flavor.id, FlavorUpdate(config_schema={"type": "object"}))
    third = apply_stack_spec(store, spec)
    assert third.updated == [f"flavor:{BUILD_ACCOUNT_FLAVOR}"]
    refreshed = store.get_flavor(flavor.id).config_schema
    assert refreshed.pop(OWNER_KEY)["owners"] == [spec.name]  # the others were in the lost mark
    assert refreshed == {k: v for k, v in flavor.config_schema.items() if k != OWNER_KEY}


def test_a_foreign_flavor_of_the_same_name_is_refused(store: Any) -> None:
    from zenml.models import FlavorFilter, FlavorUpdate

    from zenml_gcp_gitops.zenml.stack_spec import BUILD_ACCOUNT_FLAVOR

    cfg = make_cfg("reg-flavor-foreign")
    spec = gcp_stack_spec(cfg, make_outputs(cfg), mlflow_username="u", mlflow_password="p")
    apply_stack_spec(store, spec)
    flavor = store.list_flavors(
        FlavorFilter(name=BUILD_ACCOUNT_FLAVOR, type="image_builder"), hydrate=True
    ).items[0]
    store.update_flavor(flavor.id, FlavorUpdate(source="someone.else.Flavor"))
    try:
        with pytest.raises(ForeignObjectError, match="another image_builder flavor"):
            apply_stack_spec(store, spec)
    finally:
        store.update_flavor(flavor.id, FlavorUpdate(source=flavor.source))


@pytest.fixture(scope="module")
def no_implicit_server() -> Iterator[ZenServer]:
    srv = start_zenml_server(implicit_auth=False)
    try:
        yield srv
    finally:
        srv.stop()


def test_implicit_connector_is_refused_where_the_server_forbids_implicit_auth(
    no_implicit_server: ZenServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written anyway, the connector would fail on first use: stop before any write and say
    which server setting (or which flag) fixes it."""
    from zenml_gcp_gitops.cli import cli

    store = admin_store(no_implicit_server)
    cfg = make_cfg("reg-noimplicit")
    spec = gcp_stack_spec(cfg, make_outputs(cfg), mlflow_username="u", mlflow_password="p")
    before = count_objects(store)
    with pytest.raises(UserError, match="does not allow implicit authentication") as e:
        apply_stack_spec(store, spec)
    assert e.value.hint and "ZENML_ENABLE_IMPLICIT_AUTH_METHODS=true" in e.value.hint
    assert "--connector-auth service-account" in e.value.hint
    assert count_objects(store) == before
    # the service-account connector needs no server setting
    sa_cfg = make_cfg("reg-noimplicit-sa", connector_auth="service-account")
    sa = gcp_stack_spec(
        sa_cfg, make_outputs(sa_cfg),
        mlflow_username="u", mlflow_password="p",
    )  # fmt: skip
    assert apply_stack_spec(store, sa).connector is not None
    # the CLI: one line, no traceback, nothing written
    monkeypatch.delenv("ZENML_STORE_API_KEY", raising=False)
    monkeypatch.setenv("ZENML_STORE_USERNAME", no_implicit_server.username)
    monkeypatch.setenv("ZENML_STORE_PASSWORD", no_implicit_server.password)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "u")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "p")
    outputs = write_outputs(tmp_path / "outputs.json", cfg)
    res = CliRunner().invoke(
        cli, ["register", "--outputs", str(outputs), "--zenml-url", no_implicit_server.url]
    )
    assert res.exit_code != 0
    assert "does not allow implicit authentication" in res.output
    assert "Traceback" not in res.output


# What a client checks before it runs a pipeline on the stack, per variant `register` writes.
VALIDATED = {
    "val-k8s": {},
    "val-vertex": {"orchestrator": "vertex"},
    "val-sakey": {"connector_auth": "service-account"},
    "val-localib": {"image_builder": "local"},
}


@pytest.fixture(scope="module")
def validated(
    server: ZenServer, store: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Register every variant, then load all of them in one fresh client process (importing
    the Vertex and Kubernetes integrations costs seconds, once)."""
    import subprocess
    import sys

    specs = {}
    for name, overrides in VALIDATED.items():
        cfg = make_cfg(name, **overrides)
        specs[name] = gcp_stack_spec(
            cfg, make_outputs(cfg), mlflow_username="u", mlflow_password="p"
        )
        apply_stack_spec(store, specs[name])
    script = Path(__file__).resolve().parents[1] / "support" / "validate_stack.py"
    env = server.client_env(
        ZENML_CONFIG_PATH=str(tmp_path_factory.mktemp("validate-client")),
        ZENML_STORE_URL=server.url,
        ZENML_STORE_USERNAME=server.username,
        ZENML_STORE_PASSWORD=server.password,
    )
    proc = subprocess.run(
        [sys.executable, str(script), *VALIDATED],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"specs": specs, "problems": json.loads(proc.stdout.strip().splitlines()[-1])}


@pytest.mark.parametrize("name", list(VALIDATED))
def test_registered_stack_loads_and_validates_in_a_client(
    validated: dict[str, Any], name: str
) -> None:
    """Each component loads into its flavor's config class with no unknown key, the linked
    connector offers the resource each flavor asks for and loads with its auth settings, and
    `Stack.from_model(...).validate(fail_if_secrets_missing=True)` passes."""
    problems = validated["problems"][name]
    assert problems == [], "\n".join(problems)
    spec = validated["specs"][name]
    flavors = {c.type: c.flavor for c in spec.components.values()}
    assert flavors["orchestrator"] == VALIDATED[name].get("orchestrator", "kubernetes")
    if VALIDATED[name].get("image_builder") == "local":
        assert flavors["image_builder"] == "local"
    else:
        assert flavors["image_builder"] == "gcp-build-account"


def test_a_key_file_missing_fields_is_refused_before_any_write(store: Any) -> None:
    """ZenML's server stores any string for the key; the connector then fails to load in
    every client. Refused up front, without quoting the key."""
    cfg = make_cfg("reg-badkey", connector_auth="service-account")
    partial = {k: v for k, v in FAKE_SA_KEY.items() if k != "client_x509_cert_url"}
    spec = gcp_stack_spec(
        cfg, make_outputs(cfg, pipelines_sa_key=json.dumps(partial)),
        mlflow_username="u", mlflow_password="p",
    )  # fmt: skip
    before = count_objects(store)
    with pytest.raises(UserError, match="missing required fields: client_x509_cert_url") as e:
        apply_stack_spec(store, spec)
    assert FAKE_SA_KEY["private_key_id"] not in str(e.value)
    assert "TESTONLYNOTAKEY" not in str(e.value)
    assert count_objects(store) == before
