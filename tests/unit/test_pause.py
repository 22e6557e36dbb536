"""`pause` pieces without a cluster: the paused render, the ZenML run query, the CLI."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from click.testing import CliRunner

from tests.integration.test_gitops_kmock import cfg_named, outputs
from zenml_gcp_gitops.cli import cli
from zenml_gcp_gitops.gitops.render import render
from zenml_gcp_gitops.ops.pause import runs_in_progress


def _values(paused: bool, ingress: str = "gateway") -> dict[str, dict[str, Any]]:
    r = render(cfg_named("pausing", ingress=ingress), outputs(), paused=paused)
    return {
        a.key: a.manifest["spec"]["source"]["helm"]["valuesObject"]
        for a in r.apps
        if "helm" in a.manifest["spec"]["source"]
    }


def test_paused_render_zeroes_every_chart_and_changes_nothing_else() -> None:
    running, paused = _values(False, "nginx"), _values(True, "nginx")
    for key in ("platform", "workloads"):  # plain manifests: no pods of their own to scale
        assert paused.pop(key) == running[key]
    assert set(paused) == {
        "external_secrets",
        "cert_manager",
        "ingress_nginx",
        "zenml_server",
        "mlflow",
    }
    assert paused["zenml_server"]["zenml"]["replicaCount"] == 0
    assert paused["mlflow"]["replicaCount"] == 0
    assert paused["ingress_nginx"]["controller"]["replicaCount"] == 0
    for key in ("webhook", "cainjector"):
        assert paused["cert_manager"][key]["replicaCount"] == 0
    assert paused["cert_manager"]["startupapicheck"]["enabled"] is False
    assert paused["external_secrets"]["certController"]["replicaCount"] == 0
    # everything else as running (same database, same hosts, same secrets)
    assert (
        paused["zenml_server"]["zenml"]["database"] == running["zenml_server"]["zenml"]["database"]
    )
    assert running["zenml_server"]["zenml"]["replicaCount"] >= 1
    assert "replicaCount" not in running["cert_manager"]


@dataclass
class Page:
    items: list[Any]


@dataclass
class Store:
    """The two ZenML store calls, answering as the server filters (name; stack ID and status)."""

    stacks: dict[str, uuid.UUID]
    runs: list[tuple[str, uuid.UUID, str]]
    asked: list[Any] = field(default_factory=list)

    def list_stacks(self, f: Any) -> Page:
        return Page([type("S", (), {"id": i})() for n, i in self.stacks.items() if n == f.name])

    def list_runs(self, f: Any) -> Page:
        self.asked.append((f.stack_id, f.status))
        return Page([
            type("R", (), {"name": n})()
            for n, s, st in self.runs
            if s == f.stack_id and st == f.status
        ])  # fmt: skip


def test_runs_in_progress_are_this_stacks_running_or_initializing_runs() -> None:
    ours, other = uuid.uuid4(), uuid.uuid4()
    store = Store(
        {"prod": ours, "dev": other},
        [("train-1", ours, "running"), ("train-2", ours, "initializing"),
         ("done", ours, "completed"), ("elsewhere", other, "running")],
    )  # fmt: skip
    assert runs_in_progress(store, "prod") == ["train-1 (running)", "train-2 (initializing)"]
    assert {s for s, _ in store.asked} == {ours}
    assert runs_in_progress(store, "missing") == []


def test_pause_and_resume_are_commands_with_force_and_local() -> None:
    out = CliRunner().invoke(cli, ["pause", "--help"]).output
    assert "--force" in out and "--local" in out
    assert "--local" in CliRunner().invoke(cli, ["resume", "--help"]).output
    assert "--resume" in CliRunner().invoke(cli, ["deploy", "--help"]).output


def test_the_paused_line_says_whether_a_pause_or_resume_is_unfinished() -> None:
    from zenml_gcp_gitops.cli.monitoring_view import paused_line

    entry = {"at": "2026-12-07T18:00:00+00:00", "by": "ana@laptop"}
    assert paused_line({**entry, "stage": "done"}).startswith("[yellow]paused[/yellow] since")
    assert "pause unfinished" in paused_line({**entry, "stage": "argocd"})
    assert "resume unfinished" in paused_line({**entry, "stage": "done", "resuming": True})


def test_plan_names_a_paused_deployment_and_its_json_stays_one_document(
    tmp_path: Any, monkeypatch: Any
) -> None:
    import json

    from zenml_gcp_gitops.config import build_config
    from zenml_gcp_gitops.state.record import DeploymentRecord, FileRecordStore, local_record_path

    monkeypatch.setenv("ZENML_GCP_GITOPS_HOME", str(tmp_path))
    cfg = build_config(None, {"project": "my-project-1", "region": "us-central1"})
    record = DeploymentRecord.new(cfg)
    record.operations["paused"] = {"at": "2026-12-07T18:00:00+00:00", "by": "ana", "stage": "done"}
    FileRecordStore(local_record_path(cfg)).save(record)
    args = ["plan", "--offline", "--project", "my-project-1", "--region", "us-central1"]
    res = CliRunner().invoke(cli, [*args, "--output", "json"])
    assert res.exit_code == 0, res.output
    assert "paused" in res.stderr and "by ana" in res.stderr
    cost = json.loads(res.stdout)["cost"]
    assert cost["paused_total"] < cost["monthly_total"]


def test_with_a_gitops_repo_pause_refuses_before_taking_anything(tmp_path: Any) -> None:
    import pytest

    from zenml_gcp_gitops.engine import Engine
    from zenml_gcp_gitops.errors import UserError
    from zenml_gcp_gitops.run_options import Services

    taken: list[str] = []
    services = Services(lease_factory=lambda cfg, store: taken.append("lease"))
    engine = Engine(cfg_named("pausing", repo=True), services=services)
    with pytest.raises(UserError, match=r"github\.com/acme/ml-gitops"):
        engine.pause(by="ana")
    assert taken == []
