"""`local_up`'s orchestration with tiny stand-in servers: ordering, failure clean-up, no-op.

The real servers and the real registration are covered by tests/integration/test_local_e2e.py;
here the services are small Python HTTP servers and registration is recorded, so the edge
cases (ZenML ready last, a service crashing, a second `up`) run in seconds.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from zenml_gcp_gitops.errors import ServiceUnavailable, UserError
from zenml_gcp_gitops.local import rehearsal
from zenml_gcp_gitops.local import services as sv

PY = sys.executable


def _server(
    name: str, port: int, delay: float, crash: bool = False, fork: bool = False
) -> sv.ServiceSpec:
    serve = (
        f"import http.server, time; time.sleep({delay}); "
        f"http.server.ThreadingHTTPServer(('127.0.0.1', {port}), "
        "http.server.SimpleHTTPRequestHandler).serve_forever()"
    )
    if fork:  # like MLflow: the leader runs a worker (same group) that holds the port
        return sv.ServiceSpec(
            name=name, title=f"{name} server", port=port, health_path="/", ready_timeout=20,
            argv=[PY, "-c", f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', "
                  f"{serve!r}]).wait()"],
        )  # fmt: skip
    body = (
        f"import sys; print('{name} cannot start: boom'); sys.exit(4)"
        if crash
        else (
            f"import http.server, time; time.sleep({delay}); "
            f"http.server.ThreadingHTTPServer(('127.0.0.1', {port}), "
            "http.server.SimpleHTTPRequestHandler).serve_forever()"
        )
    )
    return sv.ServiceSpec(
        name=name, title=f"{name} server", argv=[PY, "-c", body], port=port, health_path="/",
        ready_timeout=20,
    )  # fmt: skip


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Stand-in services; `ctl` sets per-service delays/crashes and records registrations."""
    ctl: dict[str, Any] = {
        "delay": {"gcs": 0, "mlflow": 0, "zenml": 0}, "crash": set(), "reg": [], "fork": set()
    }  # fmt: skip

    def spec(name: str) -> Any:
        return lambda lay, port, *a: _server(
            name, port, ctl["delay"][name], crash=name in ctl["crash"], fork=name in ctl["fork"]
        )

    monkeypatch.setattr(rehearsal, "gcs_spec", spec("gcs"))
    monkeypatch.setattr(rehearsal, "mlflow_spec", spec("mlflow"))
    monkeypatch.setattr(rehearsal, "zenml_spec", spec("zenml"))
    monkeypatch.setattr(rehearsal, "create_buckets", lambda url, buckets: None)
    monkeypatch.setattr(rehearsal, "_require_modules", lambda: None)
    monkeypatch.setattr(rehearsal, "_import_zenml_client", lambda: None)
    monkeypatch.setattr(rehearsal.shutil, "which", lambda name: None)  # no registry

    def register(lay: Any, names: Any, state: Any) -> dict[str, Any]:
        assert state.services["zenml"].healthy(), "registered before ZenML answered"
        ctl["reg"].append(state.services["zenml"].url)
        key = lay.creds / names.ci_api_key_secret
        sv.write_secret(key, "KEY")
        return {
            "register": {"stack": {"id": "s1", "name": names.zenml_stack}},
            "ci": {},
            "ci_api_key_file": str(key),
            "seconds": {},
            "changed": len(ctl["reg"]) == 1,
        }

    monkeypatch.setattr(rehearsal, "_register", register)
    return ctl


def test_zenml_ready_last_still_registers_and_a_second_up_is_a_noop(
    fake: dict[str, Any], tmp_path: Path
) -> None:
    fake["delay"].update(zenml=0.8)
    base = tmp_path / "d"
    try:
        first = rehearsal.local_up("zenml", base, progress=False)
        assert len(fake["reg"]) == 1
        assert first["started"] == ["gcs", "mlflow", "zenml"] and first["changed"] is True
        assert first["ready_seconds"]["zenml"] >= first["ready_seconds"]["gcs"]
        second = rehearsal.local_up("zenml", base, progress=False)
        assert second["started"] == [] and second["changed"] is False
        assert len(fake["reg"]) == 2  # re-registered (a no-op on the server)
        env = (base / "env").read_text()
        assert env.count("export ") == 7
        assert "export ZENML_ANALYTICS_OPT_IN=false\n" in env
        # a shell with only these variables starts on the rehearsal's stack, not `default`
        assert "export ZENML_ACTIVE_STACK_ID=s1\n" in env
    finally:
        rehearsal.local_down("zenml", base)


def test_a_crashing_service_stops_what_this_run_started_and_skips_registration(
    fake: dict[str, Any], tmp_path: Path
) -> None:
    fake["crash"].add("mlflow")
    fake["delay"].update(zenml=5)
    base = tmp_path / "d"
    with pytest.raises(ServiceUnavailable, match="mlflow server exited") as err:
        rehearsal.local_up("zenml", base, progress=False)
    assert "mlflow cannot start: boom" in str(err.value)
    assert fake["reg"] == []
    state = sv.LocalState.load(base)
    assert state is not None and state.services == {}
    assert rehearsal.local_status("zenml", base)["services"] == {}


def test_a_failure_leaves_services_of_an_earlier_run_alone(
    fake: dict[str, Any], tmp_path: Path
) -> None:
    base = tmp_path / "d"
    try:
        rehearsal.local_up("zenml", base, progress=False)
        state = sv.LocalState.load(base)
        assert state is not None
        gcs = state.services["gcs"]
        assert sv.stop(gcs, timeout=5)  # it dies; the next `up` restarts it, and that fails
        fake["crash"].add("gcs")
        with pytest.raises(ServiceUnavailable, match="gcs server exited"):
            rehearsal.local_up("zenml", base, progress=False)
        after = sv.LocalState.load(base)
        assert after is not None
        assert set(after.services) == {"mlflow", "zenml"}
        assert all(s.healthy() for s in after.services.values())
    finally:
        rehearsal.local_down("zenml", base)


def _wait_dead(svc: sv.RunningService) -> None:
    deadline = time.monotonic() + 10
    while svc.alive() and time.monotonic() < deadline:
        sv._reap(svc.pid)
        time.sleep(0.05)
    assert not svc.alive()


def test_a_killed_service_leaves_no_orphan_and_comes_back_on_its_port(
    fake: dict[str, Any], tmp_path: Path
) -> None:
    fake["fork"].add("mlflow")
    base = tmp_path / "d"
    try:
        rehearsal.local_up("zenml", base, progress=False)
        state = sv.LocalState.load(base)
        assert state is not None
        old = state.services["mlflow"]
        worker = [p for p in sv.group_members(old.pid) if p != old.pid]
        assert worker, "the stand-in runs a worker"
        os.kill(old.pid, signal.SIGKILL)  # the main process dies; its worker keeps the port
        _wait_dead(old)
        assert not sv.port_is_free(old.port)
        again = rehearsal.local_up("zenml", base, progress=False)
        assert again["mlflow_url"] == old.url  # the URL stays valid
        assert again["started"] == ["mlflow"]
        assert sv.group_members(old.pid) == []  # the orphaned worker is gone
    finally:
        rehearsal.local_down("zenml", base)
    assert sv.group_members(old.pid) == []


def test_a_moved_emulator_restarts_its_dependants_and_status_checks_addresses(
    fake: dict[str, Any], tmp_path: Path
) -> None:
    base = tmp_path / "d"
    squat = socket.socket()
    try:
        first = rehearsal.local_up("zenml", base, progress=False)
        state = sv.LocalState.load(base)
        assert state is not None
        gcs, mlflow, zenml = (state.services[k] for k in ("gcs", "mlflow", "zenml"))
        assert mlflow.depends == {"gcs": gcs.url} and zenml.depends == {"gcs": gcs.url}
        assert sv.stop(gcs, timeout=5)
        squat.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squat.bind(("127.0.0.1", gcs.port))  # someone else takes its port meanwhile
        squat.listen()
        again = rehearsal.local_up("zenml", base, progress=False)
        assert again["gcs_emulator_url"] != first["gcs_emulator_url"]
        assert sorted(again["started"]) == ["gcs", "mlflow", "zenml"]
        assert again["mlflow_url"] == first["mlflow_url"]  # restarted on their own ports
        after = sv.LocalState.load(base)
        assert after is not None
        assert after.services["mlflow"].depends == {"gcs": again["gcs_emulator_url"]}
        assert rehearsal.local_status("zenml", base)["healthy"] is True
        # a dependant started against another address is reported, not called healthy
        after.services["zenml"].depends = {"gcs": first["gcs_emulator_url"]}
        after.save(base)
        status = rehearsal.local_status("zenml", base)
        assert status["healthy"] is False
        assert "local up" in status["services"]["zenml"]["error"]
    finally:
        squat.close()
        rehearsal.local_down("zenml", base)


def test_two_concurrent_ups_on_a_new_dir_race_cleanly(
    fake: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "new" / "dir"
    gate = threading.Barrier(2)
    real_mkdir = Path.mkdir

    calls: list[int] = []

    def slow_mkdir(self: Path, *a: Any, **kw: Any) -> None:
        if self == base and len(calls) < 2:
            calls.append(1)
            gate.wait(5)  # both runs saw no dir; both create it now
        real_mkdir(self, *a, **kw)

    monkeypatch.setattr(Path, "mkdir", slow_mkdir)
    fake["delay"].update(zenml=1.0)  # keeps the winner inside the lock for a while
    results: list[Any] = []

    def run() -> None:
        try:
            results.append(rehearsal.local_up("zenml", base, progress=False))
        except BaseException as e:  # noqa: BLE001 - the test inspects what each run raised
            results.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        monkeypatch.setattr(Path, "mkdir", real_mkdir)
        rehearsal.local_down("zenml", base)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(results) == 2 and len(errors) == 1, results
    assert isinstance(errors[0], UserError) and "another `local up`" in errors[0].message


def test_ctrl_c_during_registration_stops_at_once_and_says_what_is_left(tmp_path: Path) -> None:
    """Ctrl-C while `up` registers (and MLflow is still starting) in a real process: it does
    not wait for the registration or the services, stops what it started, exits 130 and says
    what is left. The registration here never ends, so a run that waits for it never exits."""
    import subprocess

    from tests.support import signals

    base = tmp_path / "d"
    state: sv.LocalState | None = None
    proc = signals.start(
        [PY, "-m", "tests.support.local_up_driver", str(tmp_path), "--",
         "local", "up", "--name", "demo", "--dir", str(base), "--no-registry"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    try:
        signals.wait_for((tmp_path / "registering").exists, proc, "`up` registers")
        state = sv.LocalState.load(base)
        assert state is not None and set(state.services) == {"gcs", "mlflow", "zenml"}
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
    finally:
        signals.stop(proc)
        leftovers = [(svc, svc.members()) for svc in (state.services.values() if state else [])]
        for svc, _ in leftovers:
            sv.stop(svc, timeout=5)  # whatever the product left, this test does not leave it
    assert proc.returncode == 130, err
    assert [(svc.title, members) for svc, members in leftovers if members] == []
    line = " ".join(err[err.index("Error:") :].split())  # after the progress lines
    assert line.startswith("Error: interrupted: stopped what this run started"), line
    for title in ("gcs server", "mlflow server", "zenml server"):
        assert title in line
    assert f"left: the data in {base.resolve()}" in line and "registration cut short" in line
    assert "local up` with the same flags" in line
    after = sv.LocalState.load(base)
    assert after is not None and after.services == {}
