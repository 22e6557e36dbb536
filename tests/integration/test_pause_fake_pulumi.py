"""The paused state through the real program and the fake Pulumi engine: the record's entry
becomes the stack's `paused` config input, which stops Cloud SQL (activation policy NEVER)
and turns the uptime checks and alert policies off; a `deploy` of a paused stack keeps it
so (and runs nothing after infra), and a resume turns everything back on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.fakes.pulumi import read_state
from tests.integration.test_monitoring_fake_pulumi import _cfg, _engine
from zenml_gcp_gitops.config import PULUMI_PROJECT, DeploymentConfig
from zenml_gcp_gitops.record import FileRecordStore, local_record_path


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


def _journal(cfg: DeploymentConfig, entry: dict[str, Any] | None) -> None:
    store = FileRecordStore(local_record_path(cfg))
    record = store.load()
    assert record is not None
    if entry is None:
        record.operations.pop("paused", None)
    else:
        record.operations["paused"] = entry
    store.save(record)


def test_paused_input_stops_sql_and_monitoring_and_deploy_keeps_it(
    fake_pulumi_env: Path, fake_pulumi_root: Path
) -> None:
    cfg = _cfg(fake_pulumi_env)
    _engine(cfg, fake_pulumi_root).deploy()
    assert _shape(cfg, fake_pulumi_env) == ("ALWAYS", {True}, 2)

    # what `pause` journals before it converges the infra
    _journal(cfg, {"at": "2026-12-07T18:00:00+00:00", "by": "ana", "stage": "infra"})
    engine = _engine(cfg, fake_pulumi_root)
    summary = engine.deploy()  # a plain deploy of a paused stack
    assert _shape(cfg, fake_pulumi_env) == ("NEVER", {False}, 0)
    # Argo CD and the servers are down: nothing after infra ran, and the summary says why
    assert [n for n, p in summary["phases"].items() if p["status"] != "skipped"] == [
        "preflight",
        "infra",
    ]
    assert summary["paused"]["by"] == "ana"
    assert engine.status(live=False)["paused"]["stage"] == "infra"
    assert summary["outputs"].get("uptime_checks") is None

    # what `resume` journals first: the same input flips back
    _journal(cfg, {"at": "2026-12-07T18:00:00+00:00", "by": "ana", "resuming": True})
    _engine(cfg, fake_pulumi_root).deploy(from_phase="infra", stop_after="infra")
    assert _shape(cfg, fake_pulumi_env) == ("ALWAYS", {True}, 2)
