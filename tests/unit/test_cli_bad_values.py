"""Hostile paths, IDs and timestamps for every command that takes one: the answer is one
line, never a traceback or an "unexpected error", and an echoed value is cut to a fixed
length with its total length said. A server that does not speak HTTP is one line too.

The corpus lists each command's path, ID and time slots; Hypothesis feeds random text to
the slots that only read (a random path must never be written to).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zenml_gcp_gitops.cli import cli

EXAMPLE = Path(__file__).resolve().parents[2] / "argocd" / "example"
CFG = ["--config", str(EXAMPLE / "config.yaml")]
OUT = ["--outputs", str(EXAMPLE / "outputs.json")]
GCP = ["--project", "demo-project-123", "--region", "europe-west4"]
LONG = "x" * 200_000
LINE_MAX = 800


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ZENML_GCP_GITOPS_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    rehearsal = tmp_path / "r"  # a rehearsal with no servers: enough to reach ID checks
    rehearsal.mkdir()
    (rehearsal / "state.json").write_text(
        json.dumps({"name": "zenml", "services": {}, "ports": {"zenml": 1, "gcs": 2}})
    )
    return tmp_path


def _answer(args: list[str]) -> tuple[int, str]:
    res = CliRunner().invoke(cli, args, prog_name="zenml-gcp-gitops")
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code != 0 or not lines, (args[:3], res.stderr[:500])
    assert len(lines) <= 1, res.stderr[:2000]
    line = lines[0] if lines else ""
    assert "unexpected error" not in line and "Traceback" not in res.output, line[:500]
    assert len(line) <= LINE_MAX, f"{len(line)} characters: {line[:300]}…"
    return res.exit_code, line


# (command, where the value goes); {v} is the hostile value
CORPUS: dict[str, list[str]] = {
    "plan --config": ["plan", "--offline", "--config", "{v}"],
    "render --outputs": ["render", *CFG, "--outputs", "{v}", "--out", "t"],
    "render --out": ["render", *CFG, *OUT, "--out", "{v}"],
    "register --outputs": ["register", *CFG, "--outputs", "{v}"],
    "register --export": ["register", *CFG, *OUT, "--export", "{v}"],
    "ci-account --outputs": ["ci-account", *CFG, "--outputs", "{v}"],
    "restore BACKUP": ["restore", "{v}", *GCP, "--yes"],
    "restore --backup-run": ["restore", "--backup-run", "{v}", *GCP, "--yes"],
    "restore --point-in-time": ["restore", "--point-in-time", "{v}", *GCP, "--yes"],
    "local status --dir": ["local", "status", "--dir", "{v}"],
    "local status --name": ["local", "status", "--name", "{v}"],
    "local down --dir": ["local", "down", "--dir", "{v}"],
    "local down --name": ["local", "down", "--purge", "--name", "{v}"],
    "local env --dir": ["local", "env", "--dir", "{v}"],
    "local backup --dir": ["local", "backup", "--list", "--dir", "{v}"],
    "local restore ID": ["local", "restore", "{v}", "--dir", "r", "--yes"],
    "local restore --dir": ["local", "restore", "20250101T000000Z", "--dir", "{v}", "--yes"],
}
# Slots where a random value is only ever read, never created or written.
READ_ONLY = [
    "plan --config", "restore BACKUP", "restore --backup-run", "restore --point-in-time",
    "local status --dir", "local status --name", "local env --dir", "local restore ID",
]  # fmt: skip


def _fill(slot: str, value: str) -> list[str]:
    return [value if a == "{v}" else a for a in CORPUS[slot]]


@pytest.mark.parametrize("slot", sorted(CORPUS))
def test_a_huge_value_is_cut_in_a_one_line_answer(slot: str) -> None:
    code, line = _answer(_fill(slot, LONG))
    assert code in (1, 2), line
    if slot.endswith(("--name", "ID", "BACKUP", "--backup-run", "--point-in-time")):
        assert "200000 chars" in line, line  # the value itself is named, cut


@pytest.mark.parametrize(
    ("slot", "value"),
    [
        ("local status --dir", "/proc/self/fd/0/x"),
        ("local env --dir", "/dev/null"),
        ("local restore ID", "../../etc"),
        ("local restore ID", "/etc"),
        ("restore --point-in-time", "9999-12-31T23:59:59-23:59"),
        ("restore --point-in-time", "\x00\u202e2020"),
        ("restore BACKUP", "../x"),
    ],
)
def test_a_hostile_value_is_one_line(slot: str, value: str) -> None:
    code, line = _answer(_fill(slot, value))
    assert code in (1, 2) and line.startswith("Error: "), line


_hostile = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.sampled_from("/.\\\x00\n\r\u202e~*?:-"), max_size=40),
    st.builds(lambda n: "a" * n, st.integers(250, 5000)),
    st.sampled_from(["", " ", "-", "/", "//", "..", "/dev/zero", "/proc", "/sys/kernel"]),
)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(READ_ONLY), _hostile)
def test_random_values_in_read_only_slots_are_one_line(slot: str, value: str) -> None:
    _answer(_fill(slot, value))


@pytest.fixture
def junk_server() -> Iterator[str]:
    """Something listening on a port that answers, but not in HTTP."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    finally:
        stop.set()
        srv.close()


def test_a_server_that_does_not_speak_http_is_one_line(
    junk_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZENML_STORE_USERNAME", "admin")
    monkeypatch.setenv("ZENML_STORE_PASSWORD", "pw")
    args = ["register", *CFG, *OUT, "--zenml-url", junk_server, "--credentials-from-env"]
    code, line = _answer([*args, "--timeout", "60"])
    assert code == 1 and "does not speak HTTP" in line and junk_server in line


@pytest.mark.timeout(60)  # code that opens a FIFO blindly blocks here forever
def test_a_fifo_where_state_or_a_manifest_belongs_is_one_line(_isolated: Path) -> None:
    import os

    d = _isolated / "fifo-state"
    d.mkdir()
    os.mkfifo(d / "state.json")
    code, line = _answer(["local", "status", "--dir", str(d)])
    assert code == 1 and "not a regular file" in line and str(d) in line
    backup = _isolated / "r" / "backups" / "20250101T000000Z"
    backup.mkdir(parents=True)
    os.mkfifo(backup / "manifest.json")
    code, line = _answer(["local", "restore", "20250101T000000Z", "--dir", "r", "--yes"])
    assert code == 1 and "damaged" in line and "not a regular file" in line
