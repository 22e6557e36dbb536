"""Infra and gitops overlapping: the real engine, preflight, infra phase and program over the fake
Pulumi CLI, the real gitops phase against kmock with Argo CD and GKE simulated (`argo_sim`).

The Cloud SQL instance's create is gated: it lasts until the test opens a file. The tests open
it from what the cluster shows, so a deploy can only finish if gitops synced the apps that need
no database while the instance was still being created; no timing decides anything.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.cloud_dns import FakeCloudDns
from tests.fakes.fake_phases import FakePhase
from tests.fakes.google_clients import FakeGcp
from tests.fakes.kube_kmock import FakeCluster
from tests.integration.test_gitops_kmock import install_source  # noqa: F401 - a fixture
from tests.support.argo_sim import ArgoSim
from tests.support.fake_engine import fake_cfg
from tests.support.typed_options import typed
from zenml_gcp_gitops.config import DeploymentConfig
from zenml_gcp_gitops.engine import Engine
from zenml_gcp_gitops.errors import Interrupted, PhaseError
from zenml_gcp_gitops.gitops.database_free import database_apps
from zenml_gcp_gitops.gitops.render import render
from zenml_gcp_gitops.outputs import InfraOutputs
from zenml_gcp_gitops.phases.gitops import GitopsPhase
from zenml_gcp_gitops.phases.infra import InfraPhase
from zenml_gcp_gitops.phases.preflight import PreflightPhase
from zenml_gcp_gitops.progress import PlainReporter

INSTANCE = "instance"  # the Cloud SQL instance's resource name in the program


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    fake = FakeCluster().start()
    try:
        yield fake
    finally:
        fake.stop()


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, s: str) -> int:
        self.lines.append(s)
        return len(s)

    def flush(self) -> None:
        pass


def _engine(
    cfg: DeploymentConfig,
    root: Path,
    cluster: FakeCluster,
    source: tuple[str, str],
    tmp: Path,
    out: Lines | None = None,
    **opts: Any,
) -> Engine:
    dns = FakeCloudDns(FakeGcp(project=cfg.project))
    journal: list[str] = []
    return Engine(
        cfg,
        phases=[
            PreflightPhase(),
            InfraPhase(),
            GitopsPhase(),
            FakePhase("register", journal),
            FakePhase("ci", journal),
        ],
        **typed(
            {
                "pulumi_root": str(root),
                "gcp_api": dns.api(cfg),
                "yes": True,
                "kube_api_client": cluster.api_client(),
                "argocd_install_source": source,
                "argocd_cache_dir": str(tmp / "argocd-cache"),
                "poll": 0.02,
                "wave_timeout": 60,
                **opts,
            },
            context=False,
        ),
        reporter=PlainReporter(stream=out or Lines(), verbose=False),
    )


def _gate(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> Path:
    gate = tmp / "instance-gate"
    monkeypatch.setenv("FAKE_PULUMI_GATE", f"{INSTANCE}={gate}")
    return gate


def converges_overlapping(engine: Engine, fake: FakeCluster, gate: Path) -> None:
    """`deploy --resume` with the instance gated: the gate opens only once the head start's
    apps are healthy in the cluster, so it converges only if the two lines overlapped."""
    assert not gate.exists()
    overlapped: list[list[str]] = []

    def open_once_head_start_synced(sim: ArgoSim) -> None:
        if not gate.exists() and sim.listed and all(sim.healthy(n) for n in sim.listed):
            overlapped.append(sorted(sim.listed))
            gate.write_text("open")

    with ArgoSim(fake, engine.cfg, on_tick=open_once_head_start_synced):
        summary = engine.deploy(resume=True)
    assert {n: p["status"] for n, p in summary["phases"].items()} == {
        n: "succeeded" for n in ("preflight", "infra", "gitops", "register", "ci")
    }
    assert len(overlapped) == 1 and overlapped[0]
    assert not any(n.endswith(("zenml-server", "mlflow")) for n in overlapped[0])
    record = engine.load_record()
    assert record is not None
    assert record.phases["gitops"].outputs["head_start"]["ran"] is True


def _phase_status(cfg: DeploymentConfig, engine: Engine) -> dict[str, str]:
    record = engine.load_record()
    assert record is not None
    return {n: r.status for n, r in record.phases.items()}


def test_gitops_syncs_the_database_free_apps_while_cloud_sql_is_created(
    fake_pulumi_env: Path,
    fake_pulumi_root: Path,
    cluster: FakeCluster,
    install_source: tuple[str, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = fake_cfg(fake_pulumi_env, name="overlap")
    gate = _gate(monkeypatch, fake_pulumi_env)
    seen_before_sql: list[list[str]] = []

    def open_when_synced(sim: ArgoSim) -> None:
        # the instance is still being created: open its gate once every app the root lists
        # is healthy, and remember which apps those were
        if not gate.exists() and sim.listed and all(sim.healthy(n) for n in sim.listed):
            seen_before_sql.append(sorted(sim.listed))
            gate.write_text("open")

    out = Lines()
    engine = _engine(cfg, fake_pulumi_root, cluster, install_source, fake_pulumi_env, out)
    with ArgoSim(cluster, cfg, on_tick=open_when_synced):
        summary = engine.deploy()

    assert {n: p["status"] for n, p in summary["phases"].items()} == {
        n: "succeeded" for n in ("preflight", "infra", "gitops", "register", "ci")
    }
    # before the database existed, exactly the apps that read no database output had synced
    outputs = InfraOutputs.from_mapping(summary["outputs"], source="test")
    rendered = render(cfg, outputs)
    needs_db = set(database_apps(rendered, outputs))
    assert {"zenml_server", "mlflow"} <= needs_db
    assert seen_before_sql == [sorted(a.name for a in rendered.apps if a.key not in needs_db)]
    # then the gitops phase added the servers
    root = cluster.get("Application", cfg.names.argocd_root_app, "argocd")
    assert root is not None
    listed = [
        a["metadata"]["name"] for a in root["spec"]["source"]["helm"]["valuesObject"]["resources"]
    ]
    assert sorted(listed) == sorted(a.name for a in rendered.apps)
    record = engine.load_record()
    assert record is not None
    gitops = record.phases["gitops"].outputs
    assert gitops["head_start"]["ran"] is True
    # the waves timed while infra ran are kept for the plan's estimate
    assert {w["wave"] for w in gitops["durations"]["waves"]} == {a.wave for a in rendered.apps}
    text = "".join(out.lines)
    assert "gitops  Installing Argo CD" in text  # both lines of work show in the progress
    assert "handoff" not in record.phases["infra"].outputs  # the full outputs replaced it


def test_a_gitops_failure_stops_infra_cleanly_and_the_next_deploy_converges(
    fake_pulumi_env: Path,
    fake_pulumi_root: Path,
    cluster: FakeCluster,
    install_source: tuple[str, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = fake_cfg(fake_pulumi_env, name="gitops-fails")
    gate = _gate(monkeypatch, fake_pulumi_env)  # never opened in the first run
    engine = _engine(
        cfg, fake_pulumi_root, cluster, install_source, fake_pulumi_env, degraded_grace=0
    )
    with ArgoSim(cluster, cfg, degrade="platform"), pytest.raises(PhaseError) as err:
        engine.deploy()
    assert not isinstance(err.value, Interrupted)
    msg = err.value.message
    assert msg.startswith("gitops failed while infra ran: ") and "platform" in msg
    assert "infra stopped cleanly" in msg
    assert _phase_status(cfg, engine) == {
        "preflight": "succeeded",
        "infra": "interrupted",
        "gitops": "failed",
    }
    record = engine.load_record()
    assert record is not None
    # the cluster side is recorded, so `destroy` can reach the cluster Argo CD runs in
    assert record.phases["infra"].outputs["handoff"]["cluster_name"]

    engine = _engine(cfg, fake_pulumi_root, cluster, install_source, fake_pulumi_env)
    converges_overlapping(engine, cluster, gate)


def test_an_infra_failure_stops_gitops_and_reports_both(
    fake_pulumi_env: Path,
    fake_pulumi_root: Path,
    cluster: FakeCluster,
    install_source: tuple[str, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = fake_cfg(fake_pulumi_env, name="infra-fails")
    gate = _gate(monkeypatch, fake_pulumi_env)
    monkeypatch.setenv("FAKE_PULUMI_FAIL_RESOURCE", f"{INSTANCE}=googleapi: Error 409: quota")

    def fail_while_gitops_waits(sim: ArgoSim) -> None:
        # gitops waits on the platform wave, which stays Progressing: let the instance fail
        if not gate.exists() and any(n.endswith("platform") for n in sim.listed):
            gate.write_text("open")

    engine = _engine(cfg, fake_pulumi_root, cluster, install_source, fake_pulumi_env)
    sim = ArgoSim(cluster, cfg, hold="platform", on_tick=fail_while_gitops_waits)
    with sim, pytest.raises(PhaseError) as err:
        engine.deploy()
    assert "pulumi up failed" in err.value.message and "quota" in err.value.message
    assert "gitops, which ran alongside, stopped cleanly" in err.value.message
    assert _phase_status(cfg, engine) == {
        "preflight": "succeeded",
        "infra": "failed",
        "gitops": "interrupted",
    }

    monkeypatch.delenv("FAKE_PULUMI_FAIL_RESOURCE")
    gate.unlink()  # the instance is created anew: held again until gitops has synced
    engine = _engine(cfg, fake_pulumi_root, cluster, install_source, fake_pulumi_env)
    converges_overlapping(engine, cluster, gate)


def test_ctrl_c_while_both_run_stops_both_and_resumes(
    fake_pulumi_env: Path,
    fake_pulumi_root: Path,
    cluster: FakeCluster,
    install_source: tuple[str, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = fake_cfg(fake_pulumi_env, name="ctrl-c")
    gate = _gate(monkeypatch, fake_pulumi_env)
    sent: list[int] = []

    def interrupt_once_synced(sim: ArgoSim) -> None:
        if not sent and sim.listed and all(sim.healthy(n) for n in sim.listed):
            sent.append(os.getpid())
            os.kill(os.getpid(), signal.SIGINT)  # as a Ctrl-C on the terminal would

    engine = _engine(cfg, fake_pulumi_root, cluster, install_source, fake_pulumi_env)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with ArgoSim(cluster, cfg, on_tick=interrupt_once_synced), pytest.raises(Interrupted):
            engine.deploy()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert sent
    status = _phase_status(cfg, engine)
    assert status["infra"] == "interrupted" and status["gitops"] == "interrupted"

    engine = _engine(cfg, fake_pulumi_root, cluster, install_source, fake_pulumi_env)
    converges_overlapping(engine, cluster, gate)
