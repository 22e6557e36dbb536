"""Upgrades through `deploy`: version changes, the backup first, the downgrade guard, and the
migration watch. The engine runs fake phases; the backup is the real one against the fake
SQL Admin API and a real GCS API (fake-gcs-server); the migration Job lives in kmock."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.fake_phases import FakePhase
from tests.fakes.gcs_emulator import gcs_emulator
from tests.fakes.google_rest import sql_over_http
from tests.fakes.kube_kmock import FakeCluster
from tests.fakes.sqladmin import FakeSqlAdmin
from tests.support.typed_options import typed
from zenml_gcp_gitops.config import DeploymentConfig, build_config
from zenml_gcp_gitops.engine import Engine
from zenml_gcp_gitops.errors import ConfigError, PhaseError, UserError
from zenml_gcp_gitops.gitops.kube import Kube
from zenml_gcp_gitops.ops import upgrade as up
from zenml_gcp_gitops.progress import PlainReporter
from zenml_gcp_gitops.state.record import local_record_path

PROJECT = "my-project-1"
BASE = {"project": PROJECT, "region": "europe-west4", "state": "local"}


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    n = build_config(None, BASE).names
    with gcs_emulator(
        tmp_path_factory.mktemp("gcs"), [n.backup_bucket, n.artifact_bucket, n.mlflow_bucket]
    ) as s:
        yield s


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ZENML_GCP_GITOPS_HOME", str(tmp_path / "home"))
    return tmp_path


def cfg_with(**versions: str) -> DeploymentConfig:
    return build_config(None, {**BASE, "versions": versions} if versions else BASE)


class Infra(FakePhase):
    def run(self, ctx: Any) -> dict[str, Any]:
        self.journal.append("run:infra")
        n = ctx.cfg.names
        return {"outputs": {"sql_instance": n.sql_instance, "artifact_bucket": n.artifact_bucket,
                            "mlflow_bucket": n.mlflow_bucket, "backup_bucket": n.backup_bucket}}  # fmt: skip


class Watching(FakePhase):
    """Records the upgrade the engine hands the gitops phase, and when it ran."""

    def __init__(self, name: str, journal: list[str], sql: FakeSqlAdmin) -> None:
        super().__init__(name, journal)
        self.sql = sql
        self.upgrade: Any = None
        self.sql_calls_at_run: list[str] = []

    def run(self, ctx: Any) -> dict[str, Any]:
        self.journal.append(f"run:{self.name}")
        pending = ctx.operations.get("upgrade")
        self.upgrade = pending if pending and pending.get("status") == "pending" else None
        self.sql_calls_at_run = list(self.sql.calls)
        return {"zenml_url": "https://zenml.example"}


def engine(
    cfg: DeploymentConfig, journal: list[str], sql: FakeSqlAdmin, storage: Any, **opts: Any
) -> tuple[Engine, Watching]:
    gitops = Watching("gitops", journal, sql)
    phases = [Infra("infra", journal), gitops]
    options = {
        "sql_admin": sql_over_http(sql),
        "storage_client": storage,
        "no_servers": True,
        "sql_poll": 0,
        **opts,
    }
    return Engine(
        cfg,
        phases=phases,  # type: ignore[arg-type]
        reporter=PlainReporter(stream=io.StringIO()),
        **typed(options, context=False),
    ), gitops


def fake_sql(storage: Any) -> FakeSqlAdmin:
    sql = FakeSqlAdmin(storage, project=PROJECT)
    names = build_config(None, BASE).names
    sql.add_instance(names.sql_instance, {db: [f"{db}-row"] for db in names.databases.values()})
    return sql


def record() -> dict[str, Any]:
    return dict(json.loads(local_record_path(build_config(None, BASE)).read_text()))


def test_a_zenml_bump_backs_up_before_any_phase_and_records_the_backup(
    home: Path, storage: Any
) -> None:
    sql, journal = fake_sql(storage), []
    engine(cfg_with(zenml_chart="0.98.0"), journal, sql, storage)[0].deploy()
    assert sql.calls == [] and record()["operations"]["package_version"]
    journal.clear()

    e, gitops = engine(cfg_with(zenml_chart="0.99.1"), journal, sql, storage)
    summary = e.deploy()

    assert sql.calls[0] == "backup_run" and any(c.startswith("export:zenml") for c in sql.calls)
    # the backup was complete before the first phase ran
    assert gitops.sql_calls_at_run == sql.calls
    assert journal == ["run:infra", "run:gitops"]
    entry = record()["operations"]["upgrade"]
    manifest_ids = [
        b
        for b in (n.name for n in storage.list_blobs(cfg_with().names.backup_bucket))
        if b.endswith("manifest.json")
    ]
    assert entry["backup_id"] and f"backups/{entry['backup_id']}/manifest.json" in manifest_ids
    assert {
        "key": "zenml_chart",
        "from": "0.98.0",
        "to": "0.99.1",
        "direction": "upgrade",
    } in entry["changes"]
    assert entry["status"] == "done" and summary["upgrade"]["backup_id"] == entry["backup_id"]
    # the gitops phase got the change, to watch the migration with the restore hint
    assert gitops.upgrade["backup_id"] == entry["backup_id"]


def test_a_downgrade_of_zenml_is_refused_before_anything_runs(home: Path, storage: Any) -> None:
    sql, journal = fake_sql(storage), []
    engine(cfg_with(zenml_chart="0.98.0"), journal, sql, storage)[0].deploy()
    journal.clear()
    before = record()
    with pytest.raises(ConfigError) as e:
        engine(cfg_with(zenml_chart="0.97.2"), journal, sql, storage)[0].deploy()
    assert e.value.exit_code == 2
    assert "0.97.2 is older than the deployed 0.98.0" in e.value.message
    assert "--allow-downgrade" in (e.value.hint or "")
    assert journal == [] and sql.calls == []
    assert record()["config"] == before["config"]
    # the dry run refuses it too
    with pytest.raises(ConfigError):
        engine(cfg_with(zenml_chart="0.97.2"), journal, sql, storage)[0].deploy(dry_run=True)
    engine(cfg_with(zenml_chart="0.97.2"), journal, sql, storage, allow_downgrade=True)[0].deploy()
    assert journal == ["run:infra", "run:gitops"] and sql.calls[0] == "backup_run"


def test_skip_backup_and_operator_bumps_take_no_backup_but_record_the_change(
    home: Path, storage: Any
) -> None:
    sql, journal = fake_sql(storage), []
    engine(cfg_with(), journal, sql, storage)[0].deploy()
    engine(cfg_with(cert_manager="v1.19.2"), journal, sql, storage)[0].deploy()
    assert sql.calls == []
    assert record()["operations"]["upgrade"]["changes"] == [
        {"key": "cert_manager", "from": "v1.19.1", "to": "v1.19.2", "direction": "upgrade"}
    ]
    engine(
        cfg_with(cert_manager="v1.19.2", mlflow_chart="1.12.0"),
        journal,
        sql,
        storage,
        skip_backup=True,
    )[0].deploy()
    assert sql.calls == []
    entry = record()["operations"]["upgrade"]
    assert entry["backup_skipped"] is True and entry["backup_id"] is None


def test_a_failed_backup_stops_the_upgrade_before_any_phase(home: Path, storage: Any) -> None:
    sql, journal = fake_sql(storage), []
    engine(cfg_with(), journal, sql, storage)[0].deploy()
    journal.clear()
    sql.fail[f"export:zenml@{cfg_with().names.sql_instance}"] = "permission denied on bucket"
    with pytest.raises(UserError) as e:
        engine(cfg_with(mlflow_chart="1.12.0"), journal, sql, storage)[0].deploy()
    assert "the backup before the upgrade failed, so nothing was changed" in e.value.message
    assert "permission denied on bucket" in e.value.message
    assert "--skip-backup" in (e.value.hint or "")
    assert journal == []


def test_a_new_package_version_is_a_listed_change(home: Path, storage: Any) -> None:
    sql, journal = fake_sql(storage), []
    engine(cfg_with(), journal, sql, storage)[0].deploy()
    path = local_record_path(cfg_with())
    data = json.loads(path.read_text())
    data["operations"]["package_version"] = "0.0.1"
    path.write_text(json.dumps(data))
    from zenml_gcp_gitops.state.record import FileRecordStore

    changes = up.version_changes(FileRecordStore(path).load(), cfg_with())
    assert [c.key for c in changes] == ["package"] and changes[0].old == "0.0.1"


def test_version_order() -> None:
    assert up.compare("0.98.0", "0.99.0") == 1
    assert up.compare("0.98.0", "0.98.0") == 0
    assert up.compare("0.100.0", "0.99.9") == -1
    assert up.compare("1.0.0-rc1", "1.0.0") == 1
    assert up.compare("v3.5.1", "v3.5.0") == -1


# ---------------------------------------------------------------- the migration Job


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    c = FakeCluster().start()
    try:
        yield c
    finally:
        c.stop()


def test_a_failed_migration_job_stops_with_its_logs_and_the_restore_command(
    cluster: FakeCluster,
) -> None:
    cfg = cfg_with(zenml_chart="0.99.1")
    job = up.migration_job_name(cfg)
    cluster.put({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": job, "namespace": "zenml"},
                 "status": {"failed": 1}})  # fmt: skip
    cluster.put({"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": f"{job}-x7", "namespace": "zenml", "labels": {"job-name": job}},
                 "status": {"phase": "Failed"}})  # fmt: skip

    def serve_log(emu: Any) -> None:
        (
            emu[f"get /api/v1/namespaces/zenml/pods/{job}-x7/log"]
            << b"alembic upgrade\nOperationalError: 1050 Table exists\n"
        )

    cluster._call(serve_log)
    with pytest.raises(PhaseError) as e:
        up.watch_migration(Kube(cluster.api_client()), cfg, "0.99.1", "20300101T000000Z",
                           timeout=5, poll=0.01)  # fmt: skip
    assert "the ZenML database migration to 0.99.1 failed" in e.value.message
    assert "OperationalError: 1050 Table exists" in e.value.message
    assert f"zenml-gcp-gitops restore 20300101T000000Z --project {PROJECT} --name zenml --yes" in (
        e.value.hint or ""
    )


def test_the_migration_watch_ends_when_the_new_server_is_ready(cluster: FakeCluster) -> None:
    cfg = cfg_with(zenml_chart="0.99.1")
    dep = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "zenml-server", "namespace": "zenml",
                        "labels": {"app.kubernetes.io/instance": "zenml-server", "app.kubernetes.io/version": "0.98.0"}},
           "spec": {"replicas": 1}, "status": {"readyReplicas": 1}}  # fmt: skip
    cluster.put(dep)
    polls = [0]

    def sleep(_: float) -> None:  # the chart's new revision rolls out after a few polls
        polls[0] += 1
        if polls[0] == 3:
            cluster.patch("Deployment", "zenml-server", "zenml",
                          {"metadata": {"labels": {"app.kubernetes.io/version": "0.99.1"}}})  # fmt: skip

    assert (
        up.watch_migration(
            Kube(cluster.api_client()), cfg, "0.99.1", None, timeout=60, poll=0, sleep=sleep
        )
        == "succeeded"
    )
    assert polls[0] == 3  # not before the new version was ready
    with pytest.raises(PhaseError) as e:
        up.watch_migration(Kube(cluster.api_client()), cfg, "0.99.2", None, timeout=0, poll=0)
    assert "did not come up at 0.99.2" in e.value.message
    assert "no backup was taken" in (e.value.hint or "")


def test_deploy_shows_the_version_changes_side_by_side_before_running(
    home: Path, storage: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from zenml_gcp_gitops.cli.deploy import _show_version_changes

    sql, journal = fake_sql(storage), []
    engine(cfg_with(), journal, sql, storage)[0].deploy()
    capsys.readouterr()
    _show_version_changes(
        engine(cfg_with(zenml_chart="0.97.0", argocd="v3.5.1"), journal, sql, storage)[0]
    )
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert rows["zenml_chart"] == [cfg_with().versions.zenml_chart, "0.97.0", "downgrade"]
    assert rows["argocd"] == ["v3.5.0", "v3.5.1", "upgrade"]
    _show_version_changes(engine(cfg_with(), journal, sql, storage)[0])
    assert capsys.readouterr().out == ""  # nothing changes: nothing shown


def test_plan_shows_the_ha_and_standard_shapes_and_their_cost_difference() -> None:
    from zenml_gcp_gitops.cli.plan import ha_difference
    from zenml_gcp_gitops.estimate.prices import snapshot_prices
    from zenml_gcp_gitops.plan import offline_plan

    cfg = build_config(None, {"project": "acme-ml-prod", "region": "us-central1"})
    prices = snapshot_prices(cfg.region)
    plan = offline_plan(cfg, prices)
    diff = ha_difference(cfg, plan, prices)
    assert diff["current"] == "standard"
    assert diff["standard"]["sql_availability"] == "ZONAL"
    assert diff["ha"]["sql_availability"] == "REGIONAL"
    assert diff["ha"]["zenml_replicas"] == 2 and diff["standard"]["zenml_replicas"] == 1
    assert diff["standard"]["monthly_cost"] == plan["cost"]["monthly_total"]
    # the HA plan's own estimate agrees with the one derived from the standard plan
    ha_cfg = build_config(None, {"project": "acme-ml-prod", "region": "us-central1", "ha": True})
    ha_plan = offline_plan(ha_cfg, prices)
    assert diff["ha"]["monthly_cost"] == ha_plan["cost"]["monthly_total"]
    assert diff["monthly_difference"] > 0
    back = ha_difference(ha_cfg, ha_plan, prices)
    assert back["current"] == "ha" and back["monthly_difference"] == diff["monthly_difference"]
