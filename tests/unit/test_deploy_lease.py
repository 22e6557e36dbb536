"""One deploy at a time: the deploy lease and the record's compare-and-swap."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.fake_phases import FakePhase
from tests.fakes.google_clients import FakeStorageClient
from zenml_gcp_gitops.config import DeploymentConfig, build_config
from zenml_gcp_gitops.engine import Engine
from zenml_gcp_gitops.progress import PlainReporter
from zenml_gcp_gitops.state.lease import DeployLease, GcsLease, Holder, LeaseHeld, StaleLease
from zenml_gcp_gitops.state.record import (
    DeploymentRecord,
    FileRecordStore,
    RecordConflict,
    RecordStore,
    make_lease,
    record_store,
)


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DeploymentConfig:
    monkeypatch.setenv("ZENML_GCP_GITOPS_HOME", str(tmp_path / "home"))
    return build_config(
        None, {"project": "my-project-1", "region": "europe-west4", "state": "local"}
    )


def _gcs_store(cfg: DeploymentConfig) -> tuple[RecordStore, FakeStorageClient]:
    client = FakeStorageClient()
    client.create_bucket(client.bucket("my-project-1-zenml-state"))
    return record_store(cfg.model_copy(update={"state": None}), client), client


def _stores(cfg: DeploymentConfig, kind: str, tmp_path: Path) -> tuple[Any, Any]:
    if kind == "file":
        path = tmp_path / "rec" / "record.json"
        return FileRecordStore(path), FileRecordStore(path)
    a, client = _gcs_store(cfg)
    b = record_store(cfg.model_copy(update={"state": None}), client)
    return a, b


@pytest.mark.parametrize("kind", ["file", "gcs"])
def test_a_stale_writer_is_refused_not_last_wins(
    cfg: DeploymentConfig, kind: str, tmp_path: Path
) -> None:
    a, b = _stores(cfg, kind, tmp_path)
    assert a.load() is None and b.load() is None
    rec = DeploymentRecord.new(cfg)
    rec.phases = {}
    a.save(rec.model_copy(update={"config_hash": "from-a"}))
    with pytest.raises(RecordConflict, match="changed by another run"):
        b.save(rec.model_copy(update={"config_hash": "from-b"}))
    loaded = a.load()
    assert loaded is not None and loaded.config_hash == "from-a"
    b.load()
    b.save(rec.model_copy(update={"config_hash": "from-b"}))  # after re-reading: fine


@pytest.mark.parametrize("kind", ["file", "gcs"])
def test_concurrent_writers_never_lose_an_update(
    cfg: DeploymentConfig, kind: str, tmp_path: Path
) -> None:
    first, _ = _stores(cfg, kind, tmp_path)
    first.load()
    first.save(DeploymentRecord.new(cfg))
    stores = [first] + [
        FileRecordStore(first.path)
        if kind == "file"
        else record_store(cfg.model_copy(update={"state": None}), first.client)
        for _ in range(5)
    ]
    start = threading.Barrier(len(stores))

    def writer(i: int, store: Any) -> None:
        start.wait(10)
        for j in range(10):
            while True:
                rec = store.load()
                rec.config.setdefault("seen", []).append(f"{i}-{j}")
                try:
                    store.save(rec)
                    break
                except RecordConflict:
                    continue  # someone else wrote: read again, apply again

    threads = [threading.Thread(target=writer, args=(i, s)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    final = first.load()
    assert final is not None
    assert sorted(final.config["seen"]) == sorted(f"{i}-{j}" for i in range(6) for j in range(10))


class Noop(FakePhase):
    def run(self, ctx: Any) -> dict[str, Any]:
        self.journal.append(f"run:{self.name}")
        return {"phase": self.name}


class Blocking(FakePhase):
    def __init__(self, name: str, journal: list[str]) -> None:
        super().__init__(name, journal)
        self.entered = threading.Event()
        self.go = threading.Event()

    def run(self, ctx: Any) -> dict[str, Any]:
        self.entered.set()
        assert self.go.wait(30)
        return {"phase": self.name}


def test_a_second_deploy_is_refused_naming_the_holder(
    cfg: DeploymentConfig, tmp_path: Path
) -> None:
    journal: list[str] = []
    slow = Blocking("register", journal)
    first = Engine(
        cfg, phases=[Noop("preflight", journal), slow],
        reporter=PlainReporter(stream=io.StringIO()),
    )  # fmt: skip
    box: dict[str, Any] = {}
    t = threading.Thread(target=lambda: box.setdefault("r", first.deploy()))
    t.start()
    try:
        assert slow.entered.wait(10)
        before = first.store.load()
        second = Engine(cfg, phases=[Noop("preflight", journal), Noop("register", journal)])
        with pytest.raises(LeaseHeld) as e:
            second.deploy()
        assert f"{socket.gethostname()} (pid {os.getpid()}" in e.value.message
        assert "another deploy or destroy" in e.value.message
        with pytest.raises(LeaseHeld):
            second.destroy()
        assert first.store.load() == before  # the refused runs wrote nothing
    finally:
        slow.go.set()
        t.join(30)
    assert box["r"]["phases"]["register"]["status"] == "succeeded"
    assert journal.count("run:preflight") == 1  # the refused run did not start a phase
    Engine(cfg, phases=[Noop("preflight", journal)]).deploy()  # released


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_gcs_lease_is_exclusive_and_a_dead_holder_is_reported_as_such(
    cfg: DeploymentConfig, tmp_path: Path
) -> None:
    store, client = _gcs_store(cfg)
    a = make_lease(cfg, store, "zenml-gcp-gitops deploy").acquire()
    try:
        assert isinstance(a.remote, GcsLease)
        held = json.loads(client.objects[(a.remote.bucket, a.remote.blob_name)])
        assert held["pid"] == os.getpid() and held["command"] == "zenml-gcp-gitops deploy"
        # another machine's run: the local lock is not shared, the bucket lease is
        other = DeployLease(cfg.name, tmp_path / "other-host", a.remote.__class__(
            client, a.remote.bucket, a.remote.blob_name))  # fmt: skip
        other.holder.host = "ci-runner-7"
        with pytest.raises(LeaseHeld, match="is running: `zenml-gcp-gitops deploy`"):
            other.acquire()
    finally:
        a.release()
    assert (a.remote.bucket, a.remote.blob_name) not in client.objects

    # a run on this host that was killed: its PID is gone
    dead = Holder(
        socket.gethostname(), _dead_pid(), "2026-01-01T00:00:00+00:00", "zenml-gcp-gitops deploy"
    )
    client.bucket(a.remote.bucket).blob(a.remote.blob_name).upload_from_string(dead.dumps())
    with pytest.raises(StaleLease) as e:
        make_lease(cfg, store).acquire()
    assert "died without finishing" in e.value.message and "another" not in e.value.message
    assert "unlock" in (e.value.hint or "")
    # a run elsewhere that stopped beating
    old = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    gone = Holder("ci-runner-7", 4242, old, "zenml-gcp-gitops destroy", old)
    client.bucket(a.remote.bucket).blob(a.remote.blob_name).upload_from_string(gone.dumps())
    with pytest.raises(StaleLease, match="no heartbeat"):
        make_lease(cfg, store).acquire()
    fresh = Holder(
        "ci-runner-7", 4242, old, "zenml-gcp-gitops destroy", datetime.now(UTC).isoformat()
    )
    client.bucket(a.remote.bucket).blob(a.remote.blob_name).upload_from_string(fresh.dumps())
    with pytest.raises(LeaseHeld, match="ci-runner-7"):
        make_lease(cfg, store).acquire()


def test_file_lease_after_kill_9_is_free_and_remembers_the_dead_run(
    cfg: DeploymentConfig, tmp_path: Path
) -> None:
    lease = make_lease(cfg, FileRecordStore(tmp_path / "r.json"))
    code = (
        "import threading\n"
        "from zenml_gcp_gitops.state.lease import DeployLease\n"
        f"held = DeployLease('zenml', __import__('pathlib').Path({str(lease.dir)!r}), command='zenml-gcp-gitops deploy').acquire()\n"
        "print('held', flush=True); threading.Event().wait()\n"  # holds it until killed
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(LeaseHeld, match=f"pid {proc.pid}"):
            make_lease(cfg, FileRecordStore(tmp_path / "r.json")).acquire()
    finally:
        proc.kill()
        proc.wait(10)
    again = make_lease(cfg, FileRecordStore(tmp_path / "r.json")).acquire()
    try:
        assert again.previous is not None and again.previous.pid == proc.pid
    finally:
        again.release()
