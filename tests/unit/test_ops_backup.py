"""`backup`: the on-demand backup, one export per database, generations, manifest last.

The SQL Admin API is the product's RestSqlAdmin over HTTP to a loopback server in front of the
fake in tests/fakes/sqladmin.py (operations take polls, one at a time per instance); the buckets are a real GCS API (fake-gcs-server) used through the real
google-cloud-storage client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.gcs_emulator import gcs_emulator
from tests.fakes.sqladmin import FakeSqlAdmin
from zenml_gcp_gitops.config import build_config
from zenml_gcp_gitops.errors import UserError
from zenml_gcp_gitops.ops import sqladmin
from zenml_gcp_gitops.ops.backup import (
    BackupDeps,
    OpsTarget,
    databases,
    list_backups,
    read_manifest,
    run_backup,
)

CFG = build_config(None, {"project": "acme-ml-prod", "region": "europe-west4"})
N = CFG.names
DBS = {db: [f"{db}-row-1", f"{db}-row-2"] for db in N.databases.values()}


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    base = tmp_path_factory.mktemp("gcs")
    with gcs_emulator(base, [N.backup_bucket, N.artifact_bucket, N.mlflow_bucket]) as client:
        yield client


def target() -> OpsTarget:
    return OpsTarget(CFG, N.sql_instance, N.backup_bucket, [N.artifact_bucket, N.mlflow_bucket])


def deps(sql: Any, storage: Any, log: list[str] | None = None) -> BackupDeps:
    return BackupDeps(
        sql=sql, storage=storage, poll=0, sleep=lambda s: None,
        log=(log.append if log is not None else lambda s: None),
    )  # fmt: skip


def test_backup_runs_each_step_after_the_last_finished_and_writes_the_manifest_last(
    storage: Any, sql_http: Any
) -> None:
    sql = FakeSqlAdmin(storage)
    sql.add_instance(N.sql_instance, DBS)
    storage.bucket(N.artifact_bucket).blob("runs/model.pkl").upload_from_string(b"v1")
    gen = storage.bucket(N.artifact_bucket).get_blob("runs/model.pkl").generation

    m = run_backup(target(), deps(sql_http(sql), storage))

    # one operation at a time: each starts only once the previous is done (the fake refuses
    # a second concurrent operation, as Cloud SQL does)
    expected: list[str] = ["backup_run", "done:backup_run"]
    for db in databases(CFG):
        expected += [f"export:{db}@{N.sql_instance}", f"done:export:{db}@{N.sql_instance}"]
    assert sql.calls == expected
    assert m["backup_run_id"] == next(iter(sql.instances[N.sql_instance].backup_runs))
    assert set(m["databases"]) == set(N.databases.values())
    for db in m["databases"]:
        uri = m["exports"][db]
        assert uri == f"gs://{N.backup_bucket}/backups/{m['id']}/{db}.sql.gz"
        name = uri.split("/", 3)[3]
        assert json.loads(storage.bucket(N.backup_bucket).blob(name).download_as_text()) == DBS[db]
    arts = m["artifact_buckets"][N.artifact_bucket]
    assert arts["objects"] == 1 and arts["max_generation"] == gen
    listing = arts["generations"].split("/", 3)[3]
    assert json.loads(storage.bucket(N.backup_bucket).blob(listing).download_as_text()) == {
        "runs/model.pkl": gen
    }
    assert m["versions"]["charts"]["zenml"] == CFG.versions.zenml_chart
    assert m["versions"]["package"]
    assert m["config"]["project"] == "acme-ml-prod"
    assert read_manifest(target(), storage, m["id"]) == m
    assert m["id"] in [x["id"] for x in list_backups(target(), storage)]


def test_mlflow_auth_database_is_exported_with_its_users(storage: Any, sql_http: Any) -> None:
    """MLflow's auth database holds the users and their permissions: a backup without it
    restores a tracking server nobody can log in to."""
    sql = FakeSqlAdmin(storage)
    sql.add_instance(N.sql_instance, {"zenml": ["z"], "mlflow": ["m"], "mlflow_auth": ["admin"]})
    d = deps(sql_http(sql), storage)
    from datetime import UTC, datetime

    d.now = lambda: datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC)
    m = run_backup(target(), d)
    assert "mlflow_auth" in m["databases"]
    name = m["exports"]["mlflow_auth"].split("/", 3)[3]
    assert json.loads(storage.bucket(N.backup_bucket).blob(name).download_as_text()) == ["admin"]


def test_a_failed_export_leaves_no_manifest_and_says_the_backup_is_incomplete(
    storage: Any, monkeypatch: pytest.MonkeyPatch, sql_http: Any
) -> None:
    sql = FakeSqlAdmin(storage)
    sql.add_instance(N.sql_instance, DBS)
    sql.fail[f"export:mlflow@{N.sql_instance}"] = "bucket access denied"
    before = {b["id"] for b in list_backups(target(), storage)}
    # a distinct timestamp from the other test's backup
    from datetime import UTC, datetime

    d = deps(sql_http(sql), storage)
    d.now = lambda: datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    with pytest.raises(UserError) as e:
        run_backup(target(), d)
    assert "backup 20300102T030405Z is incomplete" in e.value.message
    assert "export of database mlflow failed" in e.value.message
    assert "bucket access denied" in e.value.message
    run_id = next(iter(sql.instances[N.sql_instance].backup_runs))
    assert run_id in (e.value.hint or "")
    assert {b["id"] for b in list_backups(target(), storage)} == before
    with pytest.raises(UserError, match="no backup 20300102T030405Z"):
        read_manifest(target(), storage, "20300102T030405Z")


def test_an_operation_that_never_finishes_times_out_with_its_name() -> None:
    class Stuck:
        def get_operation(self, name: str) -> dict[str, Any]:
            return {"name": name, "status": "RUNNING"}

    t = [0.0]

    def sleep(s: float) -> None:
        t[0] += s

    with pytest.raises(UserError) as e:
        sqladmin.wait(Stuck(), {"name": "op-9", "status": "PENDING"}, "the export of zenml",  # type: ignore[arg-type]
                      timeout=30, poll=10, sleep=sleep, clock=lambda: t[0])  # fmt: skip
    assert "the export of zenml did not finish in 30s (operation op-9)" in e.value.message


def test_backup_schedule_daily_leaves_it_to_cloud_sql(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from zenml_gcp_gitops.cli import cli

    r = CliRunner().invoke(
        cli, ["backup", "--project", "acme-ml-prod", "--region", "europe-west4",
              "--schedule", "daily", "-o", "json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["managed_by"] == "cloud-sql"
    assert "automated backups" in data["note"] and "keep 30" in data["note"]


def test_backup_expires_its_own_on_demand_runs_past_the_retention_and_says_so(
    storage: Any,
) -> None:
    """Cloud SQL's retainedBackups expires only automated runs: on-demand ones stay until
    deleted. `backup` deletes those it took that are older than backup_retention_days, and no
    run it did not take."""
    from datetime import UTC, datetime

    sql = FakeSqlAdmin(storage)
    inst = sql.add_instance(N.sql_instance, DBS)
    runs = {
        "1": ("ON_DEMAND", "zenml-gcp-gitops backup 20300101T000000Z", "2030-01-01T00:00:00Z"),
        "2": ("ON_DEMAND", "zenml-gcp-gitops backup 20300225T000000Z", "2030-02-25T00:00:00Z"),
        "3": ("AUTOMATED", "", "2030-01-01T03:00:00Z"),
        "4": ("ON_DEMAND", "taken by hand before a migration", "2030-01-01T00:00:00Z"),
    }
    for rid, (kind, description, start) in runs.items():
        inst.backup_runs[rid] = {}
        inst.run_meta[rid] = {"type": kind, "description": description, "startTime": start}
    sql.now = "2030-03-01T00:00:00Z"
    log: list[str] = []
    d = deps(sql, storage, log)
    d.now = lambda: datetime(2030, 3, 1, tzinfo=UTC)
    assert CFG.backup_retention_days == 30

    m = run_backup(target(), d)

    assert m["expired_backup_runs"] == ["1"]
    assert sorted(inst.backup_runs) == sorted(["2", "3", "4", m["backup_run_id"]])
    assert (
        "expiring on-demand backup run 1 taken 2030-01-01: older than backup_retention_days (30)"
        in log
    )
