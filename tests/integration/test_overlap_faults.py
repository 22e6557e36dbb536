"""The engine's remaining faults with infra and gitops overlapping: a kill -9 of the whole
deploy while both lines run, a Pulumi lock another run holds, a corrupt record. Each ends
with a re-run that converges, and that re-run overlaps again: its app-of-apps is in the
cluster while the Cloud SQL instance's create is still held (harness: `test_overlap`)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.fakes.kube_kmock import FakeCluster
from tests.fakes.pulumi import hold_lock, lock_dir, read_calls
from tests.integration.test_gitops_kmock import install_source  # noqa: F401 - a fixture
from tests.integration.test_overlap import (  # noqa: F401 - cluster: a fixture
    _engine,
    _gate,
    cluster,
    converges_overlapping,
)
from tests.support import signals
from tests.support.argo_sim import ArgoSim
from tests.support.fake_engine import fake_cfg
from zenml_gcp_gitops.config import DeploymentConfig
from zenml_gcp_gitops.engine import Engine
from zenml_gcp_gitops.errors import PhaseError, UserError
from zenml_gcp_gitops.state.record import local_record_path

PROJECT = "zenml-gcp-gitops"  # the Pulumi project
REPO = Path(__file__).resolve().parents[2]
FLAGS = [
    "--project", "my-project-1", "--region", "europe-west4",
    "--secrets-provider", "passphrase", "--no-deletion-protection", "--force-destroy-buckets",
]  # fmt: skip


def _cfg(tmp: Path) -> DeploymentConfig:
    """The config the CLI builds from FLAGS with `--state file://<tmp>/state`."""
    return fake_cfg(tmp, deletion_protection=False, force_destroy_buckets=True)


def _flags(tmp: Path) -> list[str]:
    return [*FLAGS, "--state", f"file://{tmp / 'state'}"]


def _root_app(fake: FakeCluster, cfg: DeploymentConfig) -> dict[str, Any] | None:
    return fake.get("Application", cfg.names.argocd_root_app, "argocd")


def _unlock(engine: Engine, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    from zenml_gcp_gitops.cli import cli
    from zenml_gcp_gitops.cli import deploy as deploy_cli

    monkeypatch.setattr(deploy_cli, "_make_engine", lambda cfg, options=None: engine)
    res = CliRunner().invoke(cli, ["unlock", *_flags(tmp), "--yes"])
    assert res.exit_code == 0, res.output
    return res.output


def test_kill_9_while_both_run_then_destroy_reaches_the_cluster_and_deploy_converges(
    fake_pulumi_env: Path,
    fake_pulumi_root: Path,
    cluster: FakeCluster,  # noqa: F811
    install_source: tuple[str, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tmp = fake_pulumi_env
    cfg = _cfg(tmp)
    gate = _gate(monkeypatch, tmp)  # closed: the instance is being created when the kill comes
    env = {
        **os.environ,
        "FAKE_PULUMI_ROOT": str(fake_pulumi_root),
        "FAKE_PULUMI_REAL_PROGRAM": "1",
        "FAKE_KUBE_URL": cluster.url,
        "FAKE_ARGOCD_SOURCE": " ".join(install_source),
        "FAKE_ARGOCD_CACHE": str(tmp / "argocd-cache"),
    }
    cli = [str(REPO / "tests/fakes/pulumi/run_cli.py"), "deploy", *_flags(tmp), "--yes"]
    record_file = local_record_path(cfg)

    def both_run() -> bool:
        # the head start's apps are synced in the cluster and the record says so, while
        # the instance's create is still held
        root = _root_app(cluster, cfg)
        if root is None or not sim.listed or not all(sim.healthy(n) for n in sim.listed):
            return False
        record = json.loads(record_file.read_text())
        return bool(record["phases"].get("gitops", {}).get("status") == "started")

    log = (tmp / "cli.log").open("w")
    with ArgoSim(cluster, cfg) as sim, log:
        proc = signals.start([sys.executable, *cli], env=env, stdout=log, stderr=log)
        try:
            signals.wait_for(both_run, proc, "gitops synced its apps while infra still ran")
            assert not gate.exists()
        finally:
            signals.stop(proc)  # SIGKILL to its process group: the CLI and its pulumi engine
    assert proc.returncode == -9
    record = json.loads(record_file.read_text())
    assert record["phases"]["infra"]["status"] == "started"  # no handler ran
    assert record["phases"]["infra"]["outputs"]["handoff"]["cluster_name"]
    # a killed `pulumi up` leaves its lock in a diy backend
    assert list(lock_dir(tmp / "state", PROJECT, cfg.names.pulumi_stack).glob("*.json"))

    # the next deploy says the previous run died, and how to clear what it left
    with ArgoSim(cluster, cfg), pytest.raises(PhaseError) as err:
        _engine(cfg, fake_pulumi_root, cluster, install_source, tmp).deploy(resume=True)
    assert "died" in err.value.message and f"pid {proc.pid}" in err.value.message
    assert "another deploy" not in err.value.message
    assert "unlock" in (err.value.hint or "")
    _unlock(_engine(cfg, fake_pulumi_root, cluster, install_source, tmp), tmp, monkeypatch)

    # destroy reaches the cluster through the side infra recorded: the apps Argo CD made
    # go before the network (Argo CD's cascade: the children go once the root is deleted)
    import zenml_gcp_gitops.gitops.kube as kube_mod

    handoff = record["phases"]["infra"]["outputs"]["handoff"]
    reached: list[str] = []

    def connect(infra: Any, write_kubeconfig_file: bool = False) -> Any:
        # GKE's credentials are out of reach here: the cluster the handoff names is kmock
        reached.append(infra.cluster_endpoint)
        return kube_mod.Kube(cluster.api_client())

    monkeypatch.setattr(kube_mod, "connect", connect)

    def argo_cascade(sim: ArgoSim) -> None:
        root = _root_app(cluster, cfg)
        if root is not None and root["metadata"].get("deletionTimestamp"):
            for name in sim.listed:
                cluster.remove("Application", name, "argocd")
            cluster.remove("Application", cfg.names.argocd_root_app, "argocd")
            for ns in cfg.names.namespaces.values():  # and GKE releases the load balancer
                for gw in cluster.names("Gateway", ns):
                    cluster.remove("Gateway", gw, ns)

    apps_before = cluster.names("Application", "argocd")
    assert cfg.names.argocd_root_app in apps_before
    destroyer = _engine(
        cfg, fake_pulumi_root, cluster, install_source, tmp, kube_api_client=None,
        teardown_timeout=60,
    )  # fmt: skip
    with ArgoSim(cluster, cfg, on_tick=argo_cascade):
        summary = destroyer.destroy()
    assert reached == [handoff["cluster_endpoint"]]
    assert summary["phases"]["gitops"]["status"] == "succeeded"
    assert summary["phases"]["infra"]["status"] == "succeeded"
    assert cluster.names("Application", "argocd") == []

    engine = _engine(cfg, fake_pulumi_root, cluster, install_source, tmp)
    converges_overlapping(engine, cluster, gate)


def test_a_held_pulumi_lock_refuses_before_gitops_starts_and_unlock_clears_it(
    fake_pulumi_env: Path,
    fake_pulumi_root: Path,
    cluster: FakeCluster,  # noqa: F811
    install_source: tuple[str, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tmp = fake_pulumi_env
    cfg = _cfg(tmp)
    gate = _gate(monkeypatch, tmp)
    _engine(cfg, fake_pulumi_root, cluster, install_source, tmp).deploy(stop_after="preflight")
    held = hold_lock(tmp / "state", PROJECT, cfg.names.pulumi_stack, pid=777)

    engine = _engine(cfg, fake_pulumi_root, cluster, install_source, tmp)
    with ArgoSim(cluster, cfg), pytest.raises(PhaseError) as err:
        engine.deploy(resume=True)
    assert "Pulumi state lock" in err.value.message and "pid 777" in err.value.message
    assert "zenml-gcp-gitops unlock" in (err.value.hint or "")
    # the head start never began: no Argo CD, no app-of-apps, no gitops record
    assert _root_app(cluster, cfg) is None
    assert cluster.names("Application", "argocd") == []
    record = engine.load_record()
    assert record is not None
    assert set(record.phases) == {"preflight"}

    assert "pid 777" in _unlock(engine, tmp, monkeypatch)
    assert not held.exists()
    engine = _engine(cfg, fake_pulumi_root, cluster, install_source, tmp)
    converges_overlapping(engine, cluster, gate)


def test_a_corrupt_record_starts_nothing_and_moving_it_aside_converges(
    fake_pulumi_env: Path,
    fake_pulumi_root: Path,
    cluster: FakeCluster,  # noqa: F811
    install_source: tuple[str, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tmp = fake_pulumi_env
    cfg = _cfg(tmp)
    gate = _gate(monkeypatch, tmp)
    _engine(cfg, fake_pulumi_root, cluster, install_source, tmp).deploy(stop_after="preflight")
    path = local_record_path(cfg)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])  # cut short, as a full disk or a hand edit leaves it
    calls_before = read_calls(tmp / "calls.jsonl")

    engine = _engine(cfg, fake_pulumi_root, cluster, install_source, tmp)
    with ArgoSim(cluster, cfg), pytest.raises(UserError) as err:
        engine.deploy(resume=True)
    assert f"the deployment record at {path} is unreadable" in err.value.message
    assert "move it aside" in (err.value.hint or "")
    assert read_calls(tmp / "calls.jsonl") == calls_before  # Pulumi never ran
    assert _root_app(cluster, cfg) is None
    assert path.read_text() == text[: len(text) // 2]  # and the record is left as it was

    path.rename(path.with_name("record.json.corrupt"))  # the hint's recovery
    engine = _engine(cfg, fake_pulumi_root, cluster, install_source, tmp)
    converges_overlapping(engine, cluster, gate)


def test_a_record_changed_by_another_run_as_gitops_starts_stops_infra_cleanly(
    fake_pulumi_env: Path,
    fake_pulumi_root: Path,
    cluster: FakeCluster,  # noqa: F811
    install_source: tuple[str, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The head start's first write of the record (the handoff, gitops started) meets a
    record another run changed: nothing is overwritten, nothing starts in the cluster, and
    Pulumi stops cleanly instead of running on without its event stream."""
    from zenml_gcp_gitops.state.record import FileRecordStore

    tmp = fake_pulumi_env
    cfg = _cfg(tmp)
    gate = _gate(monkeypatch, tmp)
    save = FileRecordStore.save
    theirs: list[str] = []

    def another_run_writes_first(self: FileRecordStore, record: Any) -> None:
        gitops = record.phases.get("gitops")
        starting = gitops is not None and "handoff" in record.phases["infra"].outputs
        if starting and not theirs:
            data = json.loads(self.path.read_text())
            data["updated_at"] = "2026-01-01T00:00:00+00:00"
            theirs.append(json.dumps(data, indent=2))
            self.path.write_text(theirs[0])
        save(self, record)

    monkeypatch.setattr(FileRecordStore, "save", another_run_writes_first)
    engine = _engine(cfg, fake_pulumi_root, cluster, install_source, tmp)
    with ArgoSim(cluster, cfg), pytest.raises(PhaseError) as err:
        engine.deploy(resume=True)
    assert theirs
    assert "was changed by another run" in err.value.message
    assert "infra stopped cleanly" in err.value.message
    assert "nothing was overwritten" in (err.value.hint or "")
    assert local_record_path(cfg).read_text() == theirs[0]
    assert _root_app(cluster, cfg) is None
    # Pulumi was stopped, not left running: the lock is released
    assert not list(lock_dir(tmp / "state", PROJECT, cfg.names.pulumi_stack).glob("*.json"))

    engine = _engine(cfg, fake_pulumi_root, cluster, install_source, tmp)
    converges_overlapping(engine, cluster, gate)
