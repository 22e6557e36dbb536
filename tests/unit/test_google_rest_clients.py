"""The product's own Google client layers over real HTTP: `RestSqlAdmin` (ops/sqladmin.py) and
`GcpSecretManager` (gcp/secrets.py) against a loopback server that answers as the APIs do
(tests/fakes/google_rest.py): Google's error bodies and codes, long-running operations, pages,
and every request checked against Google's discovery document."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.fakes.discovery import check_body, find_method
from tests.fakes.gcp_secrets import FakeSecretManager
from tests.fakes.google_clients import FakeStorageClient
from tests.fakes.google_rest import GoogleRest, SecretManagerRoutes, secret_manager
from tests.fakes.sqladmin import FakeSqlAdmin
from zenml_gcp_gitops.errors import UserError
from zenml_gcp_gitops.ops import sqladmin
from zenml_gcp_gitops.ops.sqladmin import SqlOperationFailed

PROJECT = "acme-ml-prod"


def _wait(api: Any, op: dict[str, Any], what: str = "it") -> dict[str, Any]:
    return sqladmin.wait(api, op, what, poll=0, sleep=lambda s: None)


@pytest.fixture
def fake() -> FakeSqlAdmin:
    storage = FakeStorageClient()
    storage.create_bucket(storage.bucket("bk"))
    f = FakeSqlAdmin(storage, project=PROJECT)
    f.add_instance("db1", {"zenml": ["z1"], "mlflow": ["m1"]})
    return f


# --------------------------------------------------------------------------- discovery


def test_a_misspelt_field_a_bad_enum_and_a_missing_required_field_are_refused() -> None:
    mid = find_method("sqladmin", "v1", "POST", "/v1/projects/p/instances/i/export")
    assert mid == "sql.instances.export"
    good = {"exportContext": {"fileType": "SQL", "uri": "gs://b/o", "databases": ["d"]}}
    assert check_body("sqladmin", "v1", mid, good) == []
    typo = {"exportContext": {"fileTyp": "SQL", "uri": "gs://b/o"}}
    assert check_body("sqladmin", "v1", mid, typo) == [
        'InstancesExportRequest.exportContext: unknown field "fileTyp"'
    ]
    enum = {"exportContext": {"fileType": "MYSQL", "uri": "gs://b/o"}}
    assert "is not one of" in check_body("sqladmin", "v1", mid, enum)[0]
    clone = find_method("sqladmin", "v1", "POST", "/v1/projects/p/instances/i/clone")
    assert clone is not None
    missing = check_body("sqladmin", "v1", clone, {"cloneContext": {"pointInTime": "x"}})
    assert missing == [
        "InstancesCloneRequest.cloneContext: required field destinationInstanceName is missing"
    ]
    assert find_method("sqladmin", "v1", "POST", "/v1/projects/p/instances/i/exports") is None


def test_the_server_refuses_a_body_google_would_refuse(fake: FakeSqlAdmin) -> None:
    with GoogleRest(_routes(fake)) as server:
        url = f"{server.url}/v1/projects/{PROJECT}/instances/db1/databases"
        resp = requests.post(url, json={"nme": "x"}, timeout=10)
        assert resp.status_code == 400
        assert resp.json()["error"]["status"] == "INVALID_ARGUMENT"
        assert 'unknown field "nme"' in resp.json()["error"]["message"]
        assert server.refused


def _routes(fake: FakeSqlAdmin) -> Any:
    from tests.fakes.google_rest import SqlAdminRoutes

    return SqlAdminRoutes(fake)


# --------------------------------------------------------------------------- Cloud SQL


def test_every_sql_admin_call_the_product_makes_is_a_method_google_has(
    fake: FakeSqlAdmin, sql_http: Any
) -> None:
    """Each RestSqlAdmin method once, through the server that checks each request against the
    discovery document (the suite's autouse fixture fails the test on any refusal)."""
    api = sql_http(fake)
    fake.history["2030-01-01T00:00:00Z"] = {"zenml": ["old"], "mlflow": ["old"]}
    assert api.get_instance("db1")["state"] == "RUNNABLE"
    run = _wait(api, api.create_backup_run("db1", "a backup"))
    run_id = run["backupContext"]["backupId"]
    assert [r["id"] for r in api.list_backup_runs("db1")] == [run_id]
    _wait(api, api.export_sql("db1", "gs://bk/zenml.sql.gz", "zenml"))
    _wait(api, api.delete_database("db1", "zenml"))
    _wait(api, api.create_database("db1", "zenml"))
    _wait(api, api.import_sql("db1", "gs://bk/zenml.sql.gz", "zenml"))
    assert fake.instances["db1"].databases["zenml"] == ["z1"]
    _wait(api, api.restore_backup_run("db1", run_id))
    _wait(api, api.clone("db1", "db1-clone", "2030-01-01T00:00:00Z"))
    assert fake.instances["db1-clone"].databases["zenml"] == ["old"]
    _wait(api, api.delete_instance("db1-clone"))
    used = {mid for mid, _, _ in api._server.requests}
    assert used >= {
        "sql.instances.get", "sql.backupRuns.insert", "sql.backupRuns.list",
        "sql.instances.export", "sql.databases.delete", "sql.databases.insert",
        "sql.instances.import", "sql.instances.restoreBackup", "sql.instances.clone",
        "sql.instances.delete", "sql.operations.get",
    }  # fmt: skip


def test_backup_runs_are_read_past_the_first_page(fake: FakeSqlAdmin, sql_http: Any) -> None:
    api = sql_http(fake)
    made = [_wait(api, api.create_backup_run("db1", f"b{i}")) for i in range(5)]
    listed = [r["id"] for r in api.list_backup_runs("db1")]
    assert listed == [op["backupContext"]["backupId"] for op in made]
    pages = [p for m, p, _ in api._server.requests if m == "sql.backupRuns.list"]
    assert len(pages) == 3  # the server answers two per page


def test_a_missing_instance_is_not_found_not_runnable(fake: FakeSqlAdmin, sql_http: Any) -> None:
    with pytest.raises(SqlOperationFailed, match="NOT_FOUND The Cloud SQL instance does not exist"):
        sql_http(fake).get_instance("nope")


def test_another_project_is_refused_with_the_role_to_ask_for(fake: FakeSqlAdmin) -> None:
    from tests.fakes.google_rest import rest_sql_admin

    with GoogleRest(_routes(fake)) as server:
        api = rest_sql_admin(server, "someone-else")
        with pytest.raises(UserError) as e:
            api.get_instance("db1")
    assert not isinstance(e.value, SqlOperationFailed)
    assert "roles/cloudsql.admin" in (e.value.hint or "")


def test_a_second_operation_on_a_busy_instance_is_refused(
    fake: FakeSqlAdmin, sql_http: Any
) -> None:
    api = sql_http(fake)
    api.create_backup_run("db1", "first")
    with pytest.raises(SqlOperationFailed, match="another operation was already in progress"):
        api.export_sql("db1", "gs://bk/x", "zenml")


def test_deletion_protection_refuses_the_delete(fake: FakeSqlAdmin, sql_http: Any) -> None:
    api = sql_http(fake)
    fake.instances["db1"].deletion_protection = True
    with pytest.raises(SqlOperationFailed, match="protected from deletion"):
        api.delete_instance("db1")
    assert "db1" in fake.instances
    assert api.get_instance("db1")["settings"]["deletionProtectionEnabled"] is True


def test_a_clone_onto_an_existing_instance_is_refused(fake: FakeSqlAdmin, sql_http: Any) -> None:
    fake.add_instance("db1-clone", {"zenml": ["keep"]})
    fake.history["2030-01-01T00:00:00Z"] = {"zenml": ["old"]}
    with pytest.raises(SqlOperationFailed, match="already exists"):
        sql_http(fake).clone("db1", "db1-clone", "2030-01-01T00:00:00Z")
    assert fake.instances["db1-clone"].databases == {"zenml": ["keep"]}


def test_databases_are_created_once_deleted_once_and_imported_only_when_there(
    fake: FakeSqlAdmin, sql_http: Any
) -> None:
    api = sql_http(fake)
    with pytest.raises(SqlOperationFailed, match="already exists"):
        api.create_database("db1", "zenml")
    with pytest.raises(SqlOperationFailed, match="not found"):
        api.delete_database("db1", "ghost")
    fake.storage.bucket("bk").blob("g.sql").upload_from_string(json.dumps(["row"]))
    with pytest.raises(SqlOperationFailed, match="Unknown database 'ghost'"):
        _wait(api, api.import_sql("db1", "gs://bk/g.sql", "ghost"), "the import")
    assert "ghost" not in fake.instances["db1"].databases


# --------------------------------------------------------------------------- Secret Manager


@pytest.fixture
def sm() -> Iterator[tuple[Any, FakeSecretManager, GoogleRest]]:
    fake = FakeSecretManager(project=PROJECT)
    with GoogleRest(SecretManagerRoutes(fake)) as server:
        yield secret_manager(server, PROJECT, {"app": "zgg"}), fake, server
        assert not server.refused, server.refused


def test_secrets_are_created_once_and_read_back(sm: Any) -> None:
    api, fake, server = sm
    assert api.read("ci-key") is None  # no such secret: NOT_FOUND
    api.add_version("ci-key", "one")
    api.add_version("ci-key", "two")  # the secret exists: ALREADY_EXISTS is expected
    assert api.read("ci-key") == "two"
    assert [s for _, _, s in fake.store["ci-key"]] == ["ENABLED", "ENABLED"]
    creates = [b for m, _, b in server.requests if m.endswith("secrets.create")]
    assert creates[0]["labels"] == {"app": "zgg"}


def test_a_disabled_newest_version_is_not_read_as_the_older_one(sm: Any) -> None:
    """`versions/latest` is the newest version created: disabled, it cannot be read, and the
    older value must not come back in its place."""
    api, fake, _ = sm
    api.add_version("ci-key", "old")
    api.add_version("ci-key", "new")
    api.disable_version("ci-key", 2)
    assert api.read("ci-key") is None
    assert fake.read("ci-key") is None  # the in-memory fake agrees


def test_destroy_versions_reads_every_page(sm: Any) -> None:
    api, fake, server = sm
    for i in range(5):
        api.add_version("ci-key", f"v{i}")
    api.disable_version("ci-key", 3)
    assert api.destroy_versions("ci-key") == 4
    assert fake.states("ci-key") == ["DESTROYED", "DESTROYED", "DISABLED", "DESTROYED", "DESTROYED"]
    assert sum(m.endswith("versions.list") for m, _, _ in server.requests) >= 2
    versions = api.versions("ci-key")
    assert [(v.number, v.state) for v in versions] == [
        (5, "DESTROYED"), (4, "DESTROYED"), (3, "DISABLED"), (2, "DESTROYED"), (1, "DESTROYED")
    ]  # fmt: skip
    api.destroy_version("ci-key", 1)  # already destroyed: FAILED_PRECONDITION, no change
    assert api.destroy_versions("nothing-here") == 0
