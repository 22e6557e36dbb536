"""The StackSpec builder, the plan section and the offline outputs of `register` (no server)."""

from __future__ import annotations

import json
import shlex

import pytest
import yaml
from click.testing import CliRunner

from tests.support.register_fixtures import FAKE_SA_KEY, make_cfg, make_outputs, write_outputs
from tests.support.typed_options import typed
from zenml_gcp_gitops.config import SECRET_MARK
from zenml_gcp_gitops.phases.register import zenml_stack_plan
from zenml_gcp_gitops.zenml.stack_spec import gcp_stack_spec


def test_gcp_spec_kubernetes_values() -> None:
    cfg = make_cfg("acme")
    out = make_outputs(cfg)
    spec = gcp_stack_spec(cfg, out, mlflow_username="u", mlflow_password="pw-123")
    n = cfg.names
    assert spec.name == "acme"
    assert spec.labels == {
        "zenml:provider": "gcp",
        "zenml:deployment": "gcp-gitops",
        "zenml:name": "acme",
    }
    c = spec.components
    assert (c["artifact_store"].flavor, c["artifact_store"].configuration) == (
        "gcp",
        {"path": f"gs://{out.artifact_bucket}"},
    )
    assert c["artifact_store"].connector_resource_id == f"gs://{out.artifact_bucket}"
    assert c["container_registry"].configuration == {
        "uri": f"{cfg.region}-docker.pkg.dev/{cfg.project}/{n.registry_repo}"
    }
    orch = c["orchestrator"]
    assert orch.flavor == "kubernetes"
    assert orch.configuration["kubernetes_namespace"] == n.namespaces["pipelines"]
    assert orch.configuration["step_pod_service_account_name"] == n.ksas["pipelines"]
    assert orch.configuration["service_account_name"] == n.ksas["pipelines"]
    assert (orch.connector_resource_type, orch.connector_resource_id) == (
        "kubernetes-cluster",
        n.cluster,
    )
    tracker = c["experiment_tracker"]
    assert tracker.flavor == "mlflow"
    assert tracker.configuration["tracking_uri"] == f"https://{out.mlflow_host}"
    assert tracker.configuration["tracking_username"] == "{{acme-mlflow-credentials.username}}"
    assert tracker.configuration["tracking_password"] == "{{acme-mlflow-credentials.password}}"
    assert "pw-123" not in json.dumps(spec.public_dict())
    builder = c["image_builder"]
    assert builder.flavor == "gcp-build-account"
    assert builder.configuration == {
        "location": out.region,
        "service_account": out.service_accounts["build"],
    }
    assert [f.public_dict() for f in spec.flavors] == [
        {
            "type": "image_builder",
            "name": "gcp-build-account",
            "source": "zenml_gcp_gitops.flavors.image_builder.GCPBuildAccountImageBuilderFlavor",
        }
    ]
    assert spec.connector is not None
    assert (spec.connector.type, spec.connector.auth_method) == ("gcp", "implicit")
    assert spec.connector.secrets == {}


def test_gcp_spec_vertex_local_builder_and_sa_key() -> None:
    cfg = make_cfg(
        "acme", orchestrator="vertex", image_builder="local", connector_auth="service-account"
    )
    out = make_outputs(cfg)
    spec = gcp_stack_spec(cfg, out)
    orch = spec.components["orchestrator"]
    assert orch.flavor == "vertex"
    assert orch.configuration == {
        "location": cfg.region,
        "workload_service_account": cfg.names.sa_email("pipelines"),
    }
    assert spec.components["image_builder"].flavor == "local"
    assert spec.components["image_builder"].connector_resource_type is None
    assert spec.connector is not None and spec.connector.auth_method == "service-account"
    key = spec.connector.secrets["service_account_json"].get_secret_value()
    assert json.loads(key)["client_email"] == FAKE_SA_KEY["client_email"]
    public = json.dumps(spec.public_dict())
    assert FAKE_SA_KEY["private_key_id"] not in public
    assert spec.public_dict()["connector"]["configuration"]["service_account_json"] == SECRET_MARK


def test_plan_section_contract() -> None:
    cfg = make_cfg("acme", connector_auth="service-account")
    plan = zenml_stack_plan(cfg, make_outputs(cfg))
    assert set(plan) >= {"name", "connector", "components", "secrets", "ci"}
    assert set(plan["components"]) == {
        "artifact_store", "container_registry", "orchestrator", "experiment_tracker", "image_builder",
    }  # fmt: skip
    for comp in plan["components"].values():
        assert {"name", "flavor", "configuration"} <= set(comp)
    assert set(plan["connector"]) == {"name", "type", "auth_method", "configuration"}
    assert plan["connector"]["configuration"]["service_account_json"] == SECRET_MARK
    assert plan["secrets"] == [
        {"name": "acme-mlflow-credentials", "keys": ["password", "username"]}
    ]
    assert plan["ci"] == {"service_account": "acme-ci", "secret_id": "acme-ci-zenml-api-key"}
    assert "PRIVATE KEY" not in json.dumps(plan)


def _zenml_command(args: list[str]) -> tuple[object, list[str]]:
    """Resolve `zenml a b ...` to the click command and its remaining args, like the CLI."""
    import click
    from zenml.cli.cli import cli as zenml_cli

    cmd: click.Command = zenml_cli
    ctx = click.Context(zenml_cli, info_name="zenml")
    rest = list(args)
    while isinstance(cmd, click.Group):
        name = rest.pop(0)
        sub = cmd.get_command(ctx, name)
        assert sub is not None, f"zenml has no command {name!r}"
        cmd = sub
        ctx = click.Context(cmd, info_name=name, parent=ctx)
    return cmd, rest


@pytest.mark.parametrize("auth", ["implicit", "service-account"])
def test_print_commands_parse_with_zenml_cli(tmp_path, auth: str) -> None:
    from zenml_gcp_gitops.cli import cli

    cfg = make_cfg("acme", connector_auth=auth)
    outputs = write_outputs(tmp_path / "out.json", cfg)
    res = CliRunner().invoke(
        cli, ["register", "--outputs", str(outputs), "--connector-auth", auth, "--print-commands"]
    )
    assert res.exit_code == 0, res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert lines[-1].startswith("zenml stack register acme ")
    assert any(x.startswith("zenml service-connector register acme-gcp --type gcp") for x in lines)
    assert "PRIVATE KEY" not in res.output and "TESTONLY" not in res.output
    seen = set()
    for line in lines:
        argv = shlex.split(line)
        assert argv[0] == "zenml"
        cmd, rest = _zenml_command(argv[1:])
        ctx = cmd.make_context("zenml", rest)  # raises click.UsageError on a bad flag
        seen.add(cmd.name)
        if cmd.name == "register" and "--flavor" in rest:
            assert ctx.params["flavor"] in {
                "gcp",
                "kubernetes",
                "mlflow",
                "vertex",
                "local",
                "gcp-build-account",
            }
            assert ctx.params["connector"] in (None, "acme-gcp")
    assert {"register", "create"} <= seen
    stack = shlex.split(lines[-1])
    _, rest = _zenml_command(stack[1:])
    for flag, name in [
        ("-a", "acme-artifacts"),
        ("-o", "acme-orchestrator"),
        ("-e", "acme-mlflow"),
    ]:
        assert rest[rest.index(flag) + 1] == name


def test_export_yaml_is_zenml_import_layout(tmp_path) -> None:
    from zenml_gcp_gitops.cli import cli

    cfg = make_cfg("acme")
    outputs = write_outputs(tmp_path / "out.json", cfg)
    target = tmp_path / "stack.yaml"
    res = CliRunner().invoke(cli, ["register", "--outputs", str(outputs), "--export", str(target)])
    assert res.exit_code == 0, res.output
    data = yaml.safe_load(target.read_text())
    assert data["stack_name"] == "acme"
    assert data["components"]["orchestrator"]["flavor"] == "kubernetes"
    assert (
        data["components"]["artifact_store"]["configuration"]["path"]
        == f"gs://{cfg.names.artifact_bucket}"
    )
    assert data["zenml_version"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [("{not json", "is not JSON"), (json.dumps({"project": "x"}), "is missing")],
)
def test_bad_outputs_file_is_one_line(tmp_path, content: str, needle: str) -> None:
    from zenml_gcp_gitops.cli import cli

    bad = tmp_path / "out.json"
    bad.write_text(content)
    res = CliRunner().invoke(
        cli, ["register", "--project", "zgg-test-proj", "--region", "europe-west4", "--outputs", str(bad),
              "--zenml-url", "http://127.0.0.1:9"],
    )  # fmt: skip
    assert res.exit_code == 2
    assert needle in res.output
    assert "Traceback" not in res.output
    assert res.output.count("Error:") == 1


def test_a_url_without_scheme_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """At once: before any request and any wait (both would fail this test)."""
    import urllib.request

    from zenml_gcp_gitops.errors import UserError
    from zenml_gcp_gitops.zenml.session import wait_healthy

    def no_request(*a: object, **k: object) -> None:
        raise AssertionError("a request was sent")

    def no_wait(seconds: float) -> None:
        raise AssertionError(f"waited {seconds} s")

    monkeypatch.setattr(urllib.request, "urlopen", no_request)
    with pytest.raises(UserError, match="is not a ZenML server URL"):
        wait_healthy("zenml.example.com", timeout=30, sleep=no_wait)


def test_credentials_from_env(monkeypatch) -> None:
    from zenml_gcp_gitops.zenml.session import Credentials

    for var in ("ZENML_STORE_API_KEY", "ZENML_STORE_USERNAME", "ZENML_STORE_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    assert Credentials.from_env() is None
    monkeypatch.setenv("ZENML_STORE_USERNAME", "admin")
    monkeypatch.setenv("ZENML_STORE_PASSWORD", "pw")
    creds = Credentials.from_env()
    assert creds is not None and creds.login_form()["grant_type"] == "password"
    assert "pw" not in repr(creds)
    monkeypatch.setenv("ZENML_STORE_API_KEY", "ZENKEY_x")  # an API key wins
    creds = Credentials.from_env()
    assert creds is not None and creds.login_form() == {
        "grant_type": "zenml-api-key",
        "password": "ZENKEY_x",
    }


def test_destroy_skips_an_unreachable_server(monkeypatch) -> None:
    """Its objects live in the database infra deletes: a gone server must not block destroy."""
    from tests.support.register_fixtures import outputs_dict
    from tests.support.zenml_server import free_port
    from zenml_gcp_gitops.phases.base import PhaseContext
    from zenml_gcp_gitops.phases.ci import CiPhase
    from zenml_gcp_gitops.phases.register import RegisterPhase

    monkeypatch.setenv("ZENML_STORE_USERNAME", "admin")
    monkeypatch.setenv("ZENML_STORE_PASSWORD", "x")
    logs: list[str] = []

    class Rep:
        def step(self, m: str) -> None: ...
        def progress(self, *a: object) -> None: ...
        def log(self, line: str) -> None:
            logs.append(line)

    cfg = make_cfg("gone")
    ctx = PhaseContext(
        cfg=cfg,
        recorded={"infra": {"outputs": outputs_dict(cfg)}},
        reporter=Rep(),
        **typed({"zenml_url": f"http://127.0.0.1:{free_port()}", "timeout": 0.5}),
    )
    RegisterPhase().destroy(ctx)
    CiPhase().destroy(ctx)
    assert len(logs) == 2 and all(x.startswith("skipped: the ZenML server at") for x in logs)


def test_outputs_may_be_a_whole_plan(tmp_path) -> None:
    """`register --outputs` takes the `outputs` section of `plan --output json` too."""
    from tests.support.register_fixtures import outputs_dict
    from zenml_gcp_gitops.cli import cli

    cfg = make_cfg("acme")
    plan = {"version": 1, "config": {}, "outputs": outputs_dict(cfg), "zenml_stack": {}}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    res = CliRunner().invoke(cli, ["register", "--outputs", str(path), "--print-commands"])
    assert res.exit_code == 0, res.output
    assert f"--path=gs://{cfg.names.artifact_bucket}" in res.output
