"""Process management of the local rehearsal with tiny real processes (no ZenML, no MLflow)."""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import time
from pathlib import Path

import pytest

from zenml_gcp_gitops.errors import ServiceUnavailable
from zenml_gcp_gitops.local import services as sv

PY = sys.executable


def _http_spec(name: str, port: int, delay: float = 0.0) -> sv.ServiceSpec:
    """A server that becomes ready after `delay` seconds and forks a worker into its group."""
    code = (
        "import http.server, subprocess, sys, time\n"
        f"time.sleep({delay})\n"
        # A child in the same process group, like MLflow's uvicorn worker.
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"http.server.ThreadingHTTPServer(('127.0.0.1', {port}), "
        "http.server.SimpleHTTPRequestHandler).serve_forever()\n"
    )
    return sv.ServiceSpec(
        name=name, title=f"test {name}", argv=[PY, "-c", code], port=port, health_path="/",
        ready_timeout=20,
    )  # fmt: skip


def test_start_wait_stop_kills_the_whole_group(tmp_path: Path) -> None:
    spec = _http_spec("web", sv.free_port(), delay=0.3)
    svc = sv.start(spec, tmp_path)
    try:
        times = sv.wait_ready([(spec, svc)])
        assert 0.2 < times["web"] < 20
        assert svc.healthy()
        assert (tmp_path / "web" / "pid").read_text().strip() == str(svc.pid)
        deadline = time.monotonic() + 5
        while len(svc.members()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        members = svc.members()
        assert len(members) == 2 and svc.pid in members  # leader + forked worker
    finally:
        assert sv.stop(svc, timeout=10)
    assert sv.group_members(svc.pid) == []
    assert not svc.alive()
    assert not sv.http_ok(spec.url + "/", timeout=0.5)


def test_a_crashing_service_fails_fast_with_its_log_tail(tmp_path: Path) -> None:
    ok = _http_spec("ok", sv.free_port(), delay=600)  # ready only in 10 min: never waited for
    bad = sv.ServiceSpec(
        name="bad", title="broken server",
        argv=[PY, "-c", "import sys; print('boom: cannot open the database'); sys.exit(3)"],
        port=sv.free_port(), health_path="/", ready_timeout=20,
    )  # fmt: skip
    started = [sv.start(ok, tmp_path), sv.start(bad, tmp_path)]
    try:
        with pytest.raises(ServiceUnavailable) as err:
            sv.wait_ready([(ok, started[0]), (bad, started[1])])
        # fast = it did not wait for the slow one (a state, not a duration: no clock here)
        assert started[0].alive() and not started[0].healthy()
        msg = str(err.value)
        assert "broken server exited (code 3)" in msg
        assert "boom: cannot open the database" in msg
        assert str(tmp_path / "bad" / "log") in msg
    finally:
        for s in started:
            sv.stop(s, timeout=5)


def test_readiness_timeout_names_the_service(tmp_path: Path) -> None:
    spec = sv.ServiceSpec(
        name="mute", title="silent server", argv=[PY, "-c", "import time; time.sleep(60)"],
        port=sv.free_port(), health_path="/", ready_timeout=0.5,
    )  # fmt: skip
    svc = sv.start(spec, tmp_path)
    try:
        with pytest.raises(ServiceUnavailable, match=r"silent server was not ready after \d+ s"):
            sv.wait_ready([(spec, svc)])
    finally:
        sv.stop(svc, timeout=5)


def test_a_recorded_pid_that_is_someone_else_is_never_signalled(tmp_path: Path) -> None:
    spec = _http_spec("web", sv.free_port())
    svc = sv.start(spec, tmp_path)
    try:
        sv.wait_ready([(spec, svc)])
        # Same PID, different kernel start time: after a reboot this PID is a stranger.
        stranger = sv.RunningService(**{**svc.__dict__, "start_time": (svc.start_time or 0) + 1})
        assert not stranger.alive()
        assert stranger.members() == []
        assert sv.stop(stranger, timeout=1)  # nothing of "ours" to stop...
        assert svc.alive() and svc.healthy()  # ...and the stranger was not signalled
    finally:
        sv.stop(svc, timeout=5)


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    spec = sv.ServiceSpec(
        name="x", title="GCS emulator", argv=[str(tmp_path / "no-such-binary")], port=1,
        health_path="/",
    )  # fmt: skip
    with pytest.raises(sv.BinaryMissing, match="cannot start the GCS emulator"):
        sv.start(spec, tmp_path)


def test_choose_port_refuses_a_taken_port_and_reuses_a_free_recorded_one() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        with pytest.raises(sv.PortInUse, match=f"port {taken} requested for the zenml server"):
            sv.choose_port("zenml server", taken, None)
        # A taken recorded port is silently replaced (stable URLs only when possible).
        assert sv.choose_port("zenml server", None, taken) != taken
    free = sv.free_port()
    assert sv.choose_port("zenml server", None, free) == free
    assert sv.choose_port("zenml server", None, None, avoid=[free]) != free


def test_state_round_trips_and_secrets_are_0600(tmp_path: Path) -> None:
    svc = sv.RunningService(
        "gcs", "GCS emulator", 123, 1764355200.25, 9000, "http://127.0.0.1:9000", "/", "l"
    )
    state = sv.LocalState(name="zenml", services={"gcs": svc}, ports={"gcs": 9000}, info={"a": 1})
    state.save(tmp_path)
    loaded = sv.LocalState.load(tmp_path)
    assert loaded == state
    sv.write_secret(tmp_path / "creds" / "k", "s3cret")
    mode = stat.S_IMODE(os.stat(tmp_path / "creds" / "k").st_mode)
    assert mode == 0o600
    assert sv.read_secret(tmp_path / "creds" / "k") == "s3cret"
    assert sv.read_secret(tmp_path / "creds" / "missing") is None
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / sv.STATE_FILE).write_text("{not json")
    with pytest.raises(sv.UserError, match="not readable state"):
        sv.LocalState.load(tmp_path / "bad")


def test_a_state_file_with_kernel_clock_ticks_still_identifies_the_process(
    tmp_path: Path,
) -> None:
    """Older state files recorded /proc's start time in clock ticks; they still match."""
    ticks = int(Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19])
    svc = sv.RunningService("x", "x", os.getpid(), None, 1, "http://127.0.0.1:1", "/", "l")
    state = sv.LocalState(name="zenml", services={"x": svc})
    state.save(tmp_path)
    data = json.loads((tmp_path / sv.STATE_FILE).read_text())
    data["services"]["x"]["start_time"] = ticks
    (tmp_path / sv.STATE_FILE).write_text(json.dumps(data))
    loaded = sv.LocalState.load(tmp_path)
    assert loaded is not None and loaded.services["x"].alive()
    data["services"]["x"]["start_time"] = ticks - os.sysconf("SC_CLK_TCK")  # a second earlier
    (tmp_path / sv.STATE_FILE).write_text(json.dumps(data))
    stranger = sv.LocalState.load(tmp_path)
    assert stranger is not None and not stranger.services["x"].alive()


def test_registry_spec_serves_its_config_and_is_checked_on_v2(tmp_path: Path) -> None:
    """A stand-in `registry` binary: proves the argv, the config file and the readiness path."""
    from zenml_gcp_gitops.local import specs

    fake = tmp_path / "bin" / "registry"
    fake.parent.mkdir()
    fake.write_text(
        f"#!{PY}\n"
        "import http.server, sys, re\n"
        "assert sys.argv[1] == 'serve', sys.argv\n"
        "conf = open(sys.argv[2]).read()\n"
        "port = int(re.search(r'addr: 127.0.0.1:(\\d+)', conf).group(1))\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200 if self.path == '/v2/' else 404); self.end_headers()\n"
        "http.server.HTTPServer(('127.0.0.1', port), H).serve_forever()\n"
    )
    fake.chmod(0o755)
    lay = specs.Layout(tmp_path / "data")
    spec = specs.registry_spec(lay, sv.free_port(), str(fake))
    conf = (tmp_path / "data" / "registry" / "config.yml").read_text()
    assert f"addr: 127.0.0.1:{spec.port}" in conf
    assert str(tmp_path / "data" / "registry" / "data") in conf
    svc = sv.start(spec, lay.base)
    try:
        assert "registry" in sv.wait_ready([(spec, svc)])
    finally:
        assert sv.stop(svc, timeout=5)


def test_one_up_or_down_at_a_time_per_dir(tmp_path: Path) -> None:
    with (
        sv.dir_lock(tmp_path),
        pytest.raises(sv.UserError, match="another `local up`"),
        sv.dir_lock(tmp_path),
    ):
        pass  # pragma: no cover - the second lock must not be granted
    with sv.dir_lock(tmp_path):  # released again
        pass


def test_down_stops_recorded_groups_and_purge_removes_the_dir(tmp_path: Path) -> None:
    from zenml_gcp_gitops.local import owned, rehearsal

    base = tmp_path / "data"
    owned.claim(base, "zenml")  # what `local up` does first
    spec = _http_spec("gcs", sv.free_port())
    svc = sv.start(spec, base)
    sv.wait_ready([(spec, svc)])
    sv.LocalState(name="zenml", services={"gcs": svc}).save(base)
    kept = rehearsal.local_down("zenml", base)
    assert kept["stopped"] == ["gcs"] and base.is_dir()
    assert sv.group_members(svc.pid) == []
    assert sv.LocalState.load(base).services == {}  # type: ignore[union-attr]
    again = rehearsal.local_down("zenml", base, purge=True)
    assert again == {
        "name": "zenml", "dir": str(base), "stopped": [], "purged": True, "exists": True
    }  # fmt: skip
    assert not base.exists()


def test_workers_left_behind_by_a_dead_leader_are_still_stopped(tmp_path: Path) -> None:
    code = (
        "import subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    )  # the leader exits at once; its child stays in the group, like an orphaned worker
    spec = sv.ServiceSpec(name="orphan", title="t", argv=[PY, "-c", code], port=1, health_path="/")
    svc = sv.start(spec, tmp_path)
    deadline = time.monotonic() + 10
    while svc.alive() and time.monotonic() < deadline:
        sv._reap(svc.pid)
        time.sleep(0.05)
    assert not svc.alive()
    left = svc.members()
    assert len(left) == 1 and left[0] != svc.pid
    assert sv.stop(svc, timeout=5)
    assert sv.group_members(svc.pid) == []
