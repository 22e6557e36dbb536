"""The paused state through the real program and the fake Pulumi engine: the record's entry
becomes the stack's `paused` config input, which stops Cloud SQL (activation policy NEVER)
and turns the uptime checks and alert policies off; a `deploy` of a paused stack keeps it
so (and runs nothing after infra), and a resume turns everything back on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fakes.pulumi import read_state
from tests.integration.test_monitoring_fake_pulumi import _cfg, _engine
from zenml_gcp_gitops.config import DeploymentConfig
from zenml_gcp_gitops.names import PULUMI_PROJECT
from zenml_gcp_gitops.state.lease import LeaseHeld


def _resources(cfg: DeploymentConfig, tmp: Path) -> dict[str, list[dict[str, Any]]]:
    state = read_state(tmp / "state", PULUMI_PROJECT, cfg.names.pulumi_stack)
    out: dict[str, list[dict[str, Any]]] = {}
    for r in state["resources"]:
        out.setdefault(r["type"], []).append(r.get("inputs") or {})
    return out


def _shape(cfg: DeploymentConfig, tmp: Path) -> tuple[str, set[bool], int]:
    res = _resources(cfg, tmp)
    (sql,) = res["gcp:sql/databaseInstance:DatabaseInstance"]
    policies = res["gcp:monitoring/alertPolicy:AlertPolicy"]
    checks = res.get("gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig", [])
    return (
        sql["settings"]["activationPolicy"],
        {bool(p.get("enabled", True)) for p in policies},
        len(checks),
    )


def test_engine_pause_and_resume_drive_argocd_and_the_program_in_order(
    fake_pulumi_env: Path, fake_pulumi_root: Path
) -> None:
    """`Engine.pause` / `resume` end to end: the lease, the record, the real program through the
    fake engine, and the cluster (kmock, with the controllers of test_pause_kmock)."""
    from tests.fakes.kube_kmock import FakeCluster
    from tests.integration.test_pause_kmock import ARGO, ARGO_WORKLOADS, Controllers
    from zenml_gcp_gitops.gitops.kube import Kube
    from zenml_gcp_gitops.ops.pause_run import apply_desired
    from zenml_gcp_gitops.outputs import InfraOutputs

    cfg = _cfg(fake_pulumi_env, name="pausing")
    summary = _engine(cfg, fake_pulumi_root).deploy()
    assert _shape(cfg, fake_pulumi_env) == ("ALWAYS", {True}, 2)
    cluster = FakeCluster().start()
    try:
        ctl = Controllers(cluster)
        for kind, name, replicas in ARGO_WORKLOADS:
            ctl._workload(kind, name, ARGO, replicas)
        ctl.tick()
        out = InfraOutputs.from_mapping(summary["outputs"], source="test")
        apply_desired(Kube(cluster.api_client()), cfg, out, False, ctl.waits())
        running = sorted(ctl.app_pods())
        assert running

        def engine() -> Any:
            e = _engine(cfg, fake_pulumi_root, no_servers=True)
            e.services.kube_api_client = cluster.api_client()
            e.services.pause_waits = ctl.waits()
            return e

        result = engine().pause(by="ana@ci")
        assert result["paused"]["stage"] == "done"
        assert ctl.app_pods() == [] and not ctl.argo_running()
        assert _shape(cfg, fake_pulumi_env) == ("NEVER", {False}, 0)
        status = engine().status(live=False)
        assert status["paused"]["by"] == "ana@ci"
        assert status["monitoring"]["off"].startswith("paused")

        assert engine().pause(by="bob")["paused"]["by"] == "ana@ci"  # already paused

        # a plain deploy of a paused stack converges the infra and keeps it paused; Argo CD
        # and the servers are down, so nothing after infra runs
        summary = engine().deploy()
        assert [n for n, p in summary["phases"].items() if p["status"] != "skipped"] == [
            "preflight",
            "infra",
        ]
        assert (
            summary["paused"]["by"] == "ana@ci" and summary["outputs"].get("uptime_checks") is None
        )
        assert _shape(cfg, fake_pulumi_env) == ("NEVER", {False}, 0) and ctl.app_pods() == []

        back = engine().resume()
        assert back["resumed"] is True
        assert _shape(cfg, fake_pulumi_env) == ("ALWAYS", {True}, 2)
        assert sorted(ctl.app_pods()) == running and ctl.argo_running()
        assert "paused" not in engine().status(live=False)

        # pause holds the deploy lease: a running deploy (or pause) refuses it
        with engine().lease(), pytest.raises(LeaseHeld):
            engine().pause(by="bob")
        assert "paused" not in engine().status(live=False)

        # a paused stack's `deploy --resume` resumes first, then converges every phase
        engine().pause(by="ana@ci", force=True)
        summary = engine().deploy(resume=True)
        assert summary.get("paused") is None
        assert summary["phases"]["gitops"]["status"] == "succeeded"
        assert _shape(cfg, fake_pulumi_env) == ("ALWAYS", {True}, 2)
        assert sorted(ctl.app_pods()) == running
    finally:
        cluster.stop()
