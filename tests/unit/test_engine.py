"""The orchestrator without Pulumi: resume planning, the record (atomic, no secrets, in GCS
next to the state), error summaries, progress lines and the CLI's flag conflicts."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from tests.fakes.fake_phases import FakePhase
from tests.fakes.google_clients import FakeStorageClient
from zenml_gcp_gitops.config import DeploymentConfig, build_config
from zenml_gcp_gitops.engine import Engine
from zenml_gcp_gitops.errors import PhaseError, UserError
from zenml_gcp_gitops.infra.events import EventTracker, classify, first_meaningful_line
from zenml_gcp_gitops.phases.infra import protected_resources
from zenml_gcp_gitops.progress import PlainReporter
from zenml_gcp_gitops.state.record import (
    DeploymentRecord,
    FileRecordStore,
    GcsRecordStore,
    local_record_path,
    record_store,
    scrub,
)

INFRA_OUT = {
    "project": "my-project-1",
    "region": "europe-west4",
    "name": "zenml",
    "cluster_name": "zenml-gke",
    "cluster_location": "europe-west4",
    "cluster_endpoint": "gke.goog",
    "cluster_ca_certificate": "Q0E=",
    "network": "zenml-vpc",
    "subnet": "zenml-nodes",
    "sql_instance": "zenml-mysql",
    "sql_connection_name": "p:r:i",
    "sql_private_ip": "10.0.0.3",
    "sql_server_ca_cert": "PEM",
    "artifact_bucket": "a",
    "mlflow_bucket": "m",
    "registry_uri": "r",
    "kms_key": "k",
    "service_accounts": {},
    "ingress_ip": "1.2.3.4",
    "zenml_host": "zenml.1.2.3.4.nip.io",
    "mlflow_host": "mlflow.1.2.3.4.nip.io",
    "secret_ids": {},
}


class FakeInfra(FakePhase):
    def run(self, ctx: Any) -> dict[str, Any]:
        self.journal.append("run:infra")
        if self.fail_times > 0:
            self.fail_times -= 1
            raise RuntimeError("provider crashed")
        return {"outputs": INFRA_OUT, "secret_outputs": ["pipelines_sa_key"], "token": "abc"}


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DeploymentConfig:
    monkeypatch.setenv("ZENML_GCP_GITOPS_HOME", str(tmp_path / "home"))
    return build_config(
        None, {"project": "my-project-1", "region": "europe-west4", "state": "local"}
    )


def _engine(cfg: DeploymentConfig, journal: list[str], **fail: int) -> Engine:
    phases = [
        FakePhase("preflight", journal, fail_times=fail.get("preflight", 0)),
        FakeInfra("infra", journal, fail_times=fail.get("infra", 0)),
        *(FakePhase(n, journal, fail_times=fail.get(n, 0)) for n in ("gitops", "register", "ci")),
    ]
    # preflight must not need infra outputs
    phases[0].run = lambda ctx: (journal.append("run:preflight"), {"ok": True})[1]  # type: ignore[method-assign]
    return Engine(cfg, phases=phases, reporter=PlainReporter(stream=io.StringIO()))


def test_resume_starts_at_the_failed_phase_and_preflight_always_runs(cfg: DeploymentConfig) -> None:
    journal: list[str] = []
    with pytest.raises(PhaseError) as exc:
        _engine(cfg, journal, register=1).deploy()
    assert (
        exc.value.message == "register failed: register exploded"
        and exc.value.hint == "fix register"
    )
    rec = json.loads(local_record_path(cfg).read_text())
    assert [rec["phases"][p]["status"] for p in ("preflight", "infra", "gitops", "register")] == [
        "succeeded",
        "succeeded",
        "succeeded",
        "failed",
    ]
    assert rec["phases"]["register"]["error"].startswith("register exploded")
    journal.clear()
    summary = _engine(cfg, journal).deploy()
    assert journal == ["run:preflight", "run:register", "run:ci"]
    assert summary["phases"]["infra"] == {"status": "skipped", "previous": "succeeded"}
    journal.clear()
    _engine(cfg, journal).deploy()  # all done: a re-run converges everything
    assert journal == ["run:preflight", "run:infra", "run:gitops", "run:register", "run:ci"]


def test_changed_config_reruns_everything(cfg: DeploymentConfig) -> None:
    journal: list[str] = []
    with pytest.raises(PhaseError):
        _engine(cfg, journal, ci=1).deploy()
    journal.clear()
    changed = cfg.model_copy(update={"sql_tier": "db-custom-2-7680"})
    _engine(changed, journal).deploy()
    assert journal[:2] == ["run:preflight", "run:infra"]


def test_from_phase_and_stop_after(cfg: DeploymentConfig) -> None:
    journal: list[str] = []
    _engine(cfg, journal).deploy(stop_after="infra")
    assert journal == ["run:preflight", "run:infra"]
    journal.clear()
    _engine(cfg, journal).deploy(from_phase="register", stop_after="register")
    assert journal == ["run:preflight", "run:register"]
    with pytest.raises(UserError, match="comes after --stop-after"):
        _engine(cfg, journal).deploy(from_phase="ci", stop_after="infra")
    with pytest.raises(UserError, match="is not a phase"):
        _engine(cfg, journal).deploy(from_phase="nope")


def test_unexpected_error_is_recorded_with_a_log_file(cfg: DeploymentConfig) -> None:
    with pytest.raises(PhaseError) as exc:
        _engine(cfg, [], infra=1).deploy()
    assert "infra failed: RuntimeError: provider crashed" in exc.value.message
    rec = json.loads(local_record_path(cfg).read_text())
    log = Path(rec["phases"]["infra"]["log_file"])
    assert "Traceback" in log.read_text() and str(log) in (exc.value.hint or "")


def test_record_keeps_no_secret_values(cfg: DeploymentConfig) -> None:
    _engine(cfg, []).deploy()
    text = local_record_path(cfg).read_text()
    rec = json.loads(text)
    assert rec["phases"]["infra"]["outputs"]["token"] == "[secret]"
    assert rec["phases"]["gitops"]["outputs"]["admin_password"] == "[secret]"
    assert "hunter2" not in text and '"abc"' not in text
    assert scrub(
        {"x": SecretStr("v"), "api_key": "k", "api_key_name": "ci", "n": [1, {"password": None}]}
    ) == {
        "x": "[secret]",
        "api_key": "[secret]",
        "api_key_name": "ci",
        "n": [1, {"password": None}],
    }


def test_file_record_store_is_atomic(tmp_path: Path, cfg: DeploymentConfig) -> None:
    store = FileRecordStore(tmp_path / "d" / "record.json")
    assert store.load() is None
    rec = DeploymentRecord.new(cfg)
    store.save(rec)
    assert store.load() == rec.model_copy(update={"updated_at": store.load().updated_at})  # type: ignore[union-attr]
    names = sorted(p.name for p in (tmp_path / "d").iterdir())
    assert names == ["record.json", "record.json.lock"]  # no temp files left
    (tmp_path / "d" / "record.json").write_text("{not json")
    with pytest.raises(UserError, match="unreadable"):
        store.load()


def test_gcs_record_lives_next_to_the_state(cfg: DeploymentConfig) -> None:
    gcs_cfg = cfg.model_copy(update={"state": None})
    client = FakeStorageClient()
    store = record_store(gcs_cfg, client)
    assert isinstance(store, GcsRecordStore)
    assert store.location == "gs://my-project-1-zenml-state/zenml-gcp-gitops/zenml/record.json"
    rec = DeploymentRecord.new(gcs_cfg)
    store.save(rec)  # no bucket yet (preflight makes it): only the local mirror
    assert client.objects == {} and store.load() is not None
    client.create_bucket(client.bucket("my-project-1-zenml-state"))
    store.save(rec)
    stored = json.loads(
        client.objects[("my-project-1-zenml-state", "zenml-gcp-gitops/zenml/record.json")]
    )
    assert stored["name"] == "zenml" and stored["state_url"] == "gs://my-project-1-zenml-state"
    prefixed = record_store(cfg.model_copy(update={"state": "gs://team-state/deploys"}), client)
    assert prefixed.location == "gs://team-state/deploys/zenml-gcp-gitops/zenml/record.json"


def test_first_meaningful_line_and_hints() -> None:
    msg = "sdk-v2/provider2.go:572: sdk.helper_schema: Error creating Cluster: googleapi: Error 403: Quota 'CPUS' exceeded.\nmore"
    assert (
        first_meaningful_line(msg)
        == "Error creating Cluster: googleapi: Error 403: Quota 'CPUS' exceeded."
    )
    assert "quota" in (classify(msg) or "")
    assert "organization policy" in (
        classify("violates constraint constraints/compute.vmExternalIpAccess") or ""
    )
    assert "API is disabled" in (
        classify(
            "Error 403: Compute Engine API has not been used in project 1 before or it is disabled"
        )
        or ""
    )
    assert classify("all fine") is None


def _ev(**kw: Any) -> SimpleNamespace:
    base = dict(
        resource_pre_event=None,
        res_outputs_event=None,
        diagnostic_event=None,
        res_op_failed_event=None,
        summary_event=None,
    )
    return SimpleNamespace(**{**base, **kw})


def test_event_tracker_counts_progress_and_summarises_failures() -> None:
    out = io.StringIO()
    rep = PlainReporter(stream=out)
    rep.phase = "infra"
    t = EventTracker(rep, total=2)
    urn = "urn:pulumi:s::p::gcp:sql/databaseInstance:DatabaseInstance::mysql"
    md = SimpleNamespace(
        op=SimpleNamespace(value="create"),
        urn=urn,
        type="gcp:sql/databaseInstance:DatabaseInstance",
    )
    t(_ev(resource_pre_event=SimpleNamespace(metadata=md)))
    t(_ev(res_outputs_event=SimpleNamespace(metadata=md)))
    t(
        _ev(
            diagnostic_event=SimpleNamespace(
                urn=urn, severity="error", message="error: Error 409: instance name reserved\n"
            )
        )
    )
    t(_ev(res_op_failed_event=SimpleNamespace(metadata=md)))
    assert t.done == 1
    assert out.getvalue() == "[infra] 0/2 resources - create DatabaseInstance mysql\n"  # throttled
    assert t.summary() == [
        "DatabaseInstance mysql: create failed: Error 409: instance name reserved"
    ]


def test_protected_resources() -> None:
    res = [
        {"type": "gcp:container/cluster:Cluster", "inputs": {"name": "c"}},
        {
            "type": "gcp:container/cluster:Cluster",
            "inputs": {"name": "d", "deletionProtection": False},
        },
        {
            "type": "gcp:sql/databaseInstance:DatabaseInstance",
            "inputs": {"name": "s", "deletionProtection": True},
        },
        {"type": "gcp:storage/bucket:Bucket", "inputs": {"name": "b", "forceDestroy": False}},
        {"type": "gcp:storage/bucket:Bucket", "inputs": {"name": "e", "forceDestroy": True}},
    ]
    assert protected_resources(res) == ["Cluster c", "DatabaseInstance s", "Bucket b"]


def test_cli_offline_with_local_is_one_line_exit_2() -> None:
    from zenml_gcp_gitops.cli import cli

    res = CliRunner().invoke(cli, ["deploy", "--offline", "--local"])
    assert res.exit_code == 2
    assert "--offline and --local cannot be combined" in res.output
    assert "Traceback" not in res.output


def test_cli_destroy_without_yes_in_ci_asks_for_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from zenml_gcp_gitops.cli import cli

    monkeypatch.setenv("CI", "1")
    res = CliRunner().invoke(
        cli, ["destroy", "--project", "my-project-1", "--region", "europe-west4"]
    )
    assert res.exit_code == 1 and "needs confirmation" in res.output and "--yes" in res.output


def test_deploy_help_lists_every_flag() -> None:
    from zenml_gcp_gitops.cli import cli

    res = CliRunner().invoke(cli, ["deploy", "--help"])
    for flag in (
        "--stop-after",
        "--from-phase",
        "--dry-run",
        "--yes",
        "--output",
        "--verbose",
        "--offline",
        "--local",
        "--gitops-repo",
        "--state",
        "--secrets-provider",
    ):
        assert flag in res.output
    res = CliRunner().invoke(cli, ["destroy", "--help"])
    assert "--force" in res.output and "--purge-state" in res.output


def test_rich_reporter_shows_phases_progress_and_elapsed_time() -> None:
    from rich.console import Console

    from zenml_gcp_gitops.progress import RichReporter

    buf = io.StringIO()
    rep = RichReporter(console=Console(file=buf, force_terminal=True, width=120))
    rep.phase_start("infra")
    rep.progress(3, 10, "create Cluster gke")
    rep.phase_end("infra", "succeeded", 1.0)
    rep.phase_start("gitops")
    rep.phase_end("gitops", "failed", 0.5)
    rep.close()
    out = buf.getvalue()
    assert "infra" in out and "gitops" in out and "done" in out and "failed" in out
    assert "0:00:0" in out  # elapsed-time column


def test_cli_deploy_json_reports_failure_and_exit_code(
    cfg: DeploymentConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zenml_gcp_gitops.cli import cli
    from zenml_gcp_gitops.cli import deploy as deploy_cli

    monkeypatch.setattr(
        deploy_cli, "_make_engine", lambda c, options=None: _engine(cfg, [], gitops=1)
    )
    res = CliRunner().invoke(
        cli,
        [
            "deploy",
            "--project",
            "my-project-1",
            "--region",
            "europe-west4",
            "--state",
            "local",
            "-o",
            "json",
        ],
    )
    assert res.exit_code == 1
    doc = json.loads(res.stdout)
    assert (
        doc["ok"] is False
        and doc["error"] == "gitops failed: gitops exploded"
        and doc["hint"] == "fix gitops"
    )
    assert doc["phases"]["gitops"] == {"status": "failed", "error": "gitops exploded"}
    assert doc["phases"]["infra"]["status"] == "succeeded"
    rec = json.loads(local_record_path(cfg).read_text())
    assert rec["phases"]["gitops"]["hint"] == "fix gitops"


def test_find_locks_in_a_gcs_backend(cfg: DeploymentConfig) -> None:
    from zenml_gcp_gitops.infra.stack import find_locks

    client = FakeStorageClient()
    client.create_bucket(client.bucket("team-state"))
    gcs = cfg.model_copy(update={"state": "gs://team-state/deploys"})
    lock = "deploys/.pulumi/locks/organization/zenml-gcp-gitops/zenml/abc.json"
    client.objects[("team-state", lock)] = json.dumps(
        {"pid": 9, "username": "ana", "hostname": "ci-7", "timestamp": "2026-01-01T00:00:00Z"}
    )
    client.objects[
        ("team-state", "deploys/.pulumi/locks/organization/zenml-gcp-gitops/other/x.json")
    ] = "{}"
    legacy = "deploys/.pulumi/locks/zenml/old.json"  # pre-3.61 layout in a reused bucket
    client.objects[("team-state", legacy)] = "not json"
    locks = find_locks(gcs, client)
    assert [(x.location, x.holder) for x in locks] == [
        (f"gs://team-state/{lock}", "ana@ci-7 (pid 9) at 2026-01-01T00:00:00Z"),
        (f"gs://team-state/{legacy}", "unknown holder"),
    ]
    locks[0].delete()
    assert ("team-state", lock) not in client.objects


def test_destroy_skips_phases_that_never_ran(cfg: DeploymentConfig) -> None:
    journal: list[str] = []
    with pytest.raises(PhaseError):
        _engine(cfg, journal, gitops=1).deploy()
    journal.clear()
    summary = _engine(cfg, journal).destroy()
    assert journal == ["destroy:gitops", "destroy:infra"]  # gitops started, so it is undone
    assert summary["phases"]["ci"] == {"status": "skipped", "previous": "never run"}
    assert summary["phases"]["register"]["status"] == "skipped"


def test_cli_local_and_offline_delegate(monkeypatch: pytest.MonkeyPatch) -> None:
    import zenml_gcp_gitops.local as local_mod
    from zenml_gcp_gitops.cli import cli
    from zenml_gcp_gitops.cli import plan as plan_cli

    calls: list[tuple[str, Any]] = []
    monkeypatch.setattr(local_mod, "run_local_up", lambda **kw: calls.append(("local", kw)))
    monkeypatch.setattr(
        plan_cli,
        "show_plan",
        lambda cfg, output, **kw: calls.append(("plan", (cfg.project, output))),
    )
    res = CliRunner().invoke(cli, ["deploy", "--local", "--name", "demo"])  # no --project/--region
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(
        cli,
        [
            "deploy",
            "--offline",
            "--project",
            "my-project-1",
            "--region",
            "europe-west4",
            "-o",
            "json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert calls == [
        ("local", {"name": "demo", "data_dir": None, "db_url": None, "output": "text"}),
        ("plan", ("my-project-1", "json")),
    ]


@pytest.mark.parametrize(
    "args",
    [
        ["--project", "my-project-1"],  # no region
        ["--project", "Bad_Project", "--region", "europe-west4"],
        ["--project", "my-project-1", "--region", "europe-west4", "-o", "json"],
    ],
)
def test_deploy_offline_is_plan_offline(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    """`deploy --offline` hands over to `plan --offline` before any of deploy's own steps:
    the same answer, errors included, for the same flags."""
    from zenml_gcp_gitops.cli import cli
    from zenml_gcp_gitops.cli import plan as plan_cli

    monkeypatch.setattr(
        plan_cli, "show_plan", lambda cfg, output, **kw: print(f"plan {cfg.project} {output}")
    )
    via_deploy = CliRunner().invoke(cli, ["deploy", "--offline", *args])
    via_plan = CliRunner().invoke(cli, ["plan", "--offline", *args])
    assert (via_deploy.exit_code, via_deploy.output) == (via_plan.exit_code, via_plan.output)


def test_gcs_record_in_a_foreign_bucket_is_one_clear_error(cfg: DeploymentConfig) -> None:
    from google.api_core import exceptions as gexc

    class Forbidden(FakeStorageClient):
        def bucket(self, name: str) -> Any:
            b = super().bucket(name)
            b.blob = lambda n: SimpleNamespace(
                download_as_text=lambda: (_ for _ in ()).throw(gexc.Forbidden("denied")),
                upload_from_string=lambda *a, **k: (_ for _ in ()).throw(gexc.Forbidden("denied")),
            )
            b.get_blob = lambda n: (_ for _ in ()).throw(gexc.Forbidden("denied"))
            return b

    store = record_store(cfg.model_copy(update={"state": "gs://someone-elses"}), Forbidden())
    with pytest.raises(
        UserError, match="may not read or write the deployment record gs://someone-elses/"
    ):
        store.load()
    with pytest.raises(UserError, match=r"storage\.objects"):
        store.save(DeploymentRecord.new(cfg))


def test_dry_run_text_summary_names_state_actions(capsys: pytest.CaptureFixture[str]) -> None:
    from zenml_gcp_gitops.cli.deploy_view import print_deploy_summary as _print_deploy_summary

    _print_deploy_summary(
        {
            "deployment": "zenml",
            "dry_run": True,
            "record": "x",
            "preview": {"create": 86, "update": 0, "replace": 0, "delete": 0, "same": 0},
            "state": {
                "state_bucket": "p-zenml-state",
                "state_bucket_action": "would create",
                "state_kms_key": "zenml-pulumi-state/state",
                "state_kms_key_action": "would create",
            },
        }
    )
    out = capsys.readouterr().out
    assert "nothing was changed" in out and "86 to create" in out
    assert "State bucket gs://p-zenml-state: would create" in out
    assert "State key zenml-pulumi-state/state: would create" in out
