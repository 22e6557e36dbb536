"""`local restore` is all or nothing: a damaged backup (empty, missing, truncated database
file, damaged manifest, an ID that is a path) changes no live database, and a failure half-way
through the swap puts every database back. Real SQLite files; the servers are stand-ins.

Every path is under tmp_path.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from zenml_gcp_gitops.errors import UserError
from zenml_gcp_gitops.local import services as sv
from zenml_gcp_gitops.ops import local as local_ops

BID = "20250101T120000Z"
TABLES = {
    "zenml": ("alembic_version", "stack", "stack_component", "user"),
    "mlflow": ("alembic_version", "experiments", "runs"),
    "mlflow_auth": ("users",),
}


def _db(path: Path, db: str, value: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    for t in TABLES[db]:
        con.execute(f'CREATE TABLE "{t}" (v TEXT)')
    con.execute(f'INSERT INTO "{TABLES[db][-1]}" VALUES (?)', (value,))
    con.commit()
    con.close()
    return path


def _value(path: Path, db: str) -> str:
    con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return str(con.execute(f'SELECT v FROM "{TABLES[db][-1]}"').fetchone()[0])
    finally:
        con.close()


LIVE = {"zenml": "zenml/zenml.db", "mlflow": "mlflow/mlflow.db", "mlflow_auth": "mlflow/auth.db"}


@pytest.fixture
def rehearsal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    base = tmp_path / "data"
    for db, rel in LIVE.items():
        _db(base / rel, db, "live")
    sv.LocalState(name="zenml", ports={"zenml": 1, "mlflow": 2, "gcs": 3}).save(base)
    backup = base / "backups" / BID
    for db in LIVE:
        _db(backup / f"{db}.db", db, "backup")
    manifest = {"id": BID, "files": {db: f"{db}.db" for db in LIVE}, "known": {}}
    (backup / "manifest.json").write_text(json.dumps(manifest))
    restarts: list[int] = []
    monkeypatch.setattr(local_ops, "_restart", lambda *a, **k: restarts.append(1))
    return {"base": base, "backup": backup, "restarts": restarts}


def _live(base: Path) -> dict[str, str]:
    return {db: _value(base / rel, db) for db, rel in LIVE.items()}


def _restore(r: dict[str, Any], bid: str = BID) -> dict[str, Any]:
    return local_ops.local_restore(bid, "zenml", r["base"], verify_after=False)


def test_a_good_backup_replaces_every_database(rehearsal: dict[str, Any]) -> None:
    out = _restore(rehearsal)
    assert _live(rehearsal["base"]) == dict.fromkeys(LIVE, "backup")
    assert set(out["databases"].values()) == {f"restored from {BID}"}
    leftovers = [p.name for p in rehearsal["base"].rglob("*.db.*")]
    assert leftovers == []  # no staged copy or undo link left behind


@pytest.mark.parametrize(
    ("db", "damage", "said"),
    [
        ("zenml", lambda p: p.write_bytes(b""), "is empty"),
        ("mlflow", lambda p: p.unlink(), "is missing"),
        ("mlflow", lambda p: p.write_bytes(p.read_bytes()[:3000]), "mlflow database"),
        ("mlflow_auth", lambda p: p.write_bytes(b"not a database at all" * 400), "does not open"),
    ],
    ids=["empty-zenml", "missing-mlflow", "truncated-mlflow", "junk-auth"],
)
def test_a_damaged_file_changes_nothing_and_is_named(
    rehearsal: dict[str, Any], db: str, damage: Any, said: str
) -> None:
    bad = rehearsal["backup"] / f"{db}.db"
    damage(bad)
    with pytest.raises(UserError) as err:
        _restore(rehearsal)
    assert str(bad) in err.value.message and said in err.value.message
    assert _live(rehearsal["base"]) == dict.fromkeys(LIVE, "live")
    assert rehearsal["restarts"] == []  # checked before any server was stopped
    if said == "is missing":
        assert not bad.exists()  # not even an empty file created in the backup


def test_a_backup_without_the_tables_of_its_server_is_refused(rehearsal: dict[str, Any]) -> None:
    other = rehearsal["backup"] / "zenml.db"
    other.unlink()
    _db(other, "mlflow", "an MLflow file under ZenML's name")
    with pytest.raises(UserError, match=r"zenml database .* lacks the tables stack"):
        _restore(rehearsal)
    assert _live(rehearsal["base"]) == dict.fromkeys(LIVE, "live")


def test_a_failure_during_the_swap_puts_every_database_back(
    rehearsal: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.replace

    def replace(src: Any, dst: Any) -> None:
        if Path(dst).name == "auth.db" and not Path(src).name.endswith("before-restore"):
            raise OSError(28, "No space left on device", str(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(UserError, match="No space left on device") as err:
        _restore(rehearsal)
    assert _live(rehearsal["base"]) == dict.fromkeys(LIVE, "live")
    assert "zenml: unchanged" in err.value.message and "running again" in err.value.message
    assert rehearsal["restarts"] == [1]


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "nested"])
def test_only_ids_under_backups_are_accepted(rehearsal: dict[str, Any], kind: str) -> None:
    elsewhere = rehearsal["base"].parent / "elsewhere" / BID
    elsewhere.mkdir(parents=True)
    for db in LIVE:
        _db(elsewhere / f"{db}.db", db, "foreign")
    manifest = {"id": BID, "files": {db: f"{db}.db" for db in LIVE}}
    (elsewhere / "manifest.json").write_text(json.dumps(manifest))
    bid = {
        "absolute": str(elsewhere),
        "dotdot": f"../../elsewhere/{BID}",
        "nested": f"{BID}/../{BID}",
    }[kind]
    with pytest.raises(UserError, match="is not a local backup ID"):
        _restore(rehearsal, bid)
    assert _live(rehearsal["base"]) == dict.fromkeys(LIVE, "live")


def test_a_manifest_entry_that_leaves_the_backup_is_refused(rehearsal: dict[str, Any]) -> None:
    outside = _db(rehearsal["base"] / "outside.db", "zenml", "outside")
    manifest = json.loads((rehearsal["backup"] / "manifest.json").read_text())
    manifest["files"]["zenml"] = f"../../{outside.name}"
    (rehearsal["backup"] / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="not a file name"):
        _restore(rehearsal)
    assert _live(rehearsal["base"]) == dict.fromkeys(LIVE, "live")


def test_a_damaged_manifest_is_called_damaged_not_missing(rehearsal: dict[str, Any]) -> None:
    (rehearsal["backup"] / "manifest.json").write_text("{ truncated")
    with pytest.raises(UserError) as err:
        _restore(rehearsal)
    assert "damaged" in err.value.message and "no local backup" not in err.value.message
    assert str(rehearsal["backup"] / "manifest.json") in err.value.message


def test_a_long_id_is_cut_in_the_reply(rehearsal: dict[str, Any]) -> None:
    with pytest.raises(UserError) as err:
        _restore(rehearsal, "x" * 200_000)
    assert len(str(err.value)) < 600 and "200000 chars" in err.value.message


def test_the_emulator_starts_again_with_the_servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The emulator died before the restore: the servers must not come back without it."""
    from tests.unit.test_local_up_flow import _server
    from zenml_gcp_gitops.local import specs

    base = tmp_path / "data"
    for db, rel in LIVE.items():
        _db(base / rel, db, "live")
        _db(base / "backups" / BID / f"{db}.db", db, "backup")
    manifest = {"id": BID, "files": {db: f"{db}.db" for db in LIVE}}
    (base / "backups" / BID / "manifest.json").write_text(json.dumps(manifest))
    ports = {k: sv.free_port() for k in ("zenml", "mlflow", "gcs")}
    sv.LocalState(name="zenml", ports=ports).save(base)
    monkeypatch.setattr(specs, "gcs_spec", lambda lay, port: _server("gcs", port, 0))
    monkeypatch.setattr(specs, "mlflow_spec", lambda lay, port, *a: _server("mlflow", port, 0))
    monkeypatch.setattr(specs, "zenml_spec", lambda lay, port, *a: _server("zenml", port, 0))
    buckets: list[list[str]] = []
    monkeypatch.setattr(specs, "create_buckets", lambda url, names: buckets.append(names))
    try:
        local_ops.local_restore(BID, "zenml", base, verify_after=False)
        state = sv.LocalState.load(base)
        assert state is not None
        assert sorted(k for k, s in state.services.items() if s.alive()) == [
            "gcs", "mlflow", "zenml"
        ]  # fmt: skip
        assert state.services["gcs"].port == ports["gcs"]
        assert buckets == [["zenml-local-artifacts", "zenml-local-mlflow"]]
    finally:
        state = sv.LocalState.load(base)
        for svc in state.services.values() if state else []:
            sv.stop(svc, timeout=10)


def test_the_printed_restore_command_works_as_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It keeps --name and --dir, names this install's script, and carries --yes."""
    import shlex

    from click.testing import CliRunner

    from zenml_gcp_gitops import ui
    from zenml_gcp_gitops.cli import cli

    script = tmp_path / "venv" / "bin" / "zenml-gcp-gitops"
    monkeypatch.setattr(ui, "self_command", lambda: shlex.quote(str(script)))
    monkeypatch.setattr(
        local_ops, "local_backup", lambda *a, **k: {"id": BID, "dir": str(tmp_path / BID)}
    )
    d = tmp_path / "my data"
    res = CliRunner().invoke(cli, ["local", "backup", "--name", "demo", "--dir", str(d)])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.stdout.splitlines() if x.startswith("Restore it with: "))
    argv = shlex.split(line.removeprefix("Restore it with: "))
    assert argv == [
        str(script), "local", "restore", BID, "--name", "demo", "--dir", str(d.resolve()), "--yes"
    ]  # fmt: skip


def test_restore_prints_lines_not_a_python_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from zenml_gcp_gitops.cli import cli

    result = {
        "id": BID,
        "databases": dict.fromkeys(LIVE, f"restored from {BID}"),
        "verified": {"zenml": True, "stack": True, "mlflow_experiments": 2},
    }
    monkeypatch.setattr(local_ops, "local_restore", lambda *a, **k: result)
    res = CliRunner().invoke(cli, ["local", "restore", BID, "--yes"])
    assert res.exit_code == 0, res.output
    assert "{" not in res.stdout and "True" not in res.stdout
    assert "mlflow_auth: restored from" in res.stdout and "stack yes" in res.stdout
