"""What a new user meets first: every command without Google credentials, unexpected errors,
Ctrl-C, the printed next steps and the messages of `deploy`'s flags."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.conftest import require
from tests.support import signals
from zenml_gcp_gitops.cli import cli

GOOD = ["--project", "demo-project-123", "--region", "europe-west4"]
ADC_FIX = "run `gcloud auth application-default login`"


@pytest.fixture
def no_adc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A machine without Application Default Credentials (and no metadata server)."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.setenv("ZENML_GCP_GITOPS_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def _one_line(result: Result, code: int) -> str:
    assert result.exit_code == code, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # no traceback
    lines = _lines(result.stderr)
    assert len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    return lines[0]


# Every command that reaches for GCP: (argv, takes -o json)
GCP_COMMANDS = [
    (["deploy"], True),
    (["deploy", "--dry-run"], True),
    (["deploy", "--stop-after", "preflight"], True),
    (["status"], True),
    (["status", "--no-live"], True),
    (["destroy", "--yes"], True),
    (["outputs"], True),
    (["unlock", "--yes"], False),
    (["render", "--out", "tree"], True),
    (["argocd", "--no-forward"], False),
]


@pytest.mark.parametrize(
    ("argv", "json_out"), GCP_COMMANDS, ids=[" ".join(a) for a, _ in GCP_COMMANDS]
)
def test_without_credentials_every_command_is_one_line(
    argv: list[str], json_out: bool, no_adc: Path
) -> None:
    result = CliRunner().invoke(cli, [*argv, *GOOD])
    line = _one_line(result, 2)
    assert "no Google Application Default Credentials found" in line and ADC_FIX in line
    assert result.stdout == ""
    if json_out:
        result = CliRunner().invoke(cli, [*argv, *GOOD, "-o", "json"])
        _one_line(result, 2)
        doc = json.loads(result.stdout)
        assert doc["ok"] is False
        assert doc["error"] == "no Google Application Default Credentials found"
        assert ADC_FIX in doc["hint"]
    # nothing was recorded for a run that never started
    assert not list((no_adc / "home").rglob("record.json"))


def test_credential_check_comes_before_any_google_client(
    no_adc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.cloud import storage  # type: ignore[attr-defined]

    made: list[object] = []
    monkeypatch.setattr(storage, "Client", lambda *a, **k: made.append(k))
    result = CliRunner().invoke(cli, ["deploy", *GOOD])
    _one_line(result, 2)
    assert made == []


def test_unexpected_error_is_one_line_with_a_log_file(
    no_adc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zenml_gcp_gitops.cli import plan as plan_cli

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("something broke\nsecond line of it")

    monkeypatch.setattr(plan_cli, "show_plan", boom)
    result = CliRunner().invoke(cli, ["plan", "--offline", *GOOD, "-o", "json"])
    line = _one_line(result, 1)
    assert line.startswith("Error: unexpected error: RuntimeError: something broke second line")
    log = Path(line.split("details in ", 1)[1].rstrip(")"))
    assert log.is_file() and log.parent == no_adc / "home" / "logs"
    assert "Traceback" in log.read_text() and "something broke" in log.read_text()
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["exit_code"] == 1 and str(log) in doc["hint"]


def test_ctrl_c_in_local_up_exits_130(no_adc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zenml_gcp_gitops.local as local_pkg

    def interrupted(*a: object, **k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(local_pkg, "up_quietly", interrupted)
    result = CliRunner().invoke(cli, ["local", "up", "--name", "demo"])
    assert result.exit_code == 130, result.output
    assert _lines(result.stderr) == ["Error: interrupted (re-running the same command continues)"]


def _console_script() -> Path:
    script = Path(sys.executable).with_name("zenml-gcp-gitops")
    require(None if script.exists() else f"the console script {script} (pip install -e '.[test]')")
    return script


def test_ctrl_c_in_a_real_process_exits_130(tmp_path: Path) -> None:
    """SIGINT while a command waits (here: reading a config from a FIFO nobody writes to)."""
    fifo = tmp_path / "cfg"
    os.mkfifo(fifo)
    proc = signals.start(
        [str(_console_script()), "plan", "--offline", "--config", str(fifo)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    writer: list[int] = []

    def reading() -> bool:
        fd = signals.fifo_writer(fifo)
        if fd is not None:
            writer.append(fd)
        return bool(writer)

    try:
        signals.wait_for(reading, proc, "the CLI opens the FIFO")
        proc.send_signal(signal.SIGINT)  # it now blocks in read(): the write end stays open
        _out, err = proc.communicate(timeout=120)
    finally:
        for fd in writer:
            os.close(fd)
        signals.stop(proc)
    assert proc.returncode == 130, err
    assert _lines(err) == ["Error: interrupted (re-running the same command continues)"], err


# Runs the console script as installed, after an import hook that sends the process SIGINT
# when the CLI starts to import `module`: a Ctrl-C at a known point of the start-up.
_SIGINT_AT_IMPORT = """
import importlib.abc, os, runpy, signal, sys
module, script, *args = sys.argv[1:]
class SigintAt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == module:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, SigintAt())
sys.argv = [script, *args]
runpy.run_path(script, run_name="__main__")
"""


@pytest.mark.parametrize("module", ["click", "zenml_gcp_gitops.cli.commands"])
def test_ctrl_c_during_start_up_exits_130(module: str, tmp_path: Path) -> None:
    """Ctrl-C while the console script still imports the CLI: one line and 130, no traceback."""
    proc = signals.start(
        [sys.executable, "-c", _SIGINT_AT_IMPORT, module, str(_console_script()),
         "plan", "--offline", "--config", str(tmp_path / "missing.yaml")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _out, err = proc.communicate(timeout=120)
    finally:
        signals.stop(proc)
    assert proc.returncode == 130, err
    assert _lines(err) == ["Error: interrupted (re-running the same command continues)"], err


def test_losing_a_first_deploy_race_is_one_line(tmp_path: Path) -> None:
    """Two first deploys: the one whose `pulumi stack init` lost says so in one line, and
    leaves the record to the winner."""
    from pulumi.automation import StackAlreadyExistsError
    from pulumi.automation._cmd import CommandResult

    from zenml_gcp_gitops.config import build_config
    from zenml_gcp_gitops.engine import Engine
    from zenml_gcp_gitops.errors import UserError
    from zenml_gcp_gitops.state.record import FileRecordStore

    class Infra:
        name = "infra"

        def run(self, ctx: object) -> dict[str, object]:
            raise StackAlreadyExistsError(
                CommandResult(
                    stdout="",
                    stderr="error: stack 'zenml' already exists\nmore detail\nand more",
                    code=255,
                )
            )

    class Ok:
        name = "preflight"

        def run(self, ctx: object) -> dict[str, object]:
            return {}

    cfg = build_config(
        None, {"project": "demo-project-123", "region": "europe-west4", "state": "local"}
    )
    store = FileRecordStore(tmp_path / "record.json")
    engine = Engine(cfg, phases=[Ok(), Infra()], store=store)  # type: ignore[list-item]
    with pytest.raises(UserError) as exc:
        engine.deploy()
    assert "another deploy of this deployment is running" in exc.value.message
    assert "\n" not in str(exc.value)
    rec = store.load()
    assert rec is not None and "infra" not in rec.phases  # the winner's to record


# --------------------------------------------------------------------------- deploy's flags


def test_deploy_without_arguments_suggests_local_too(no_adc: Path) -> None:
    line = _one_line(CliRunner().invoke(cli, ["deploy"]), 2)
    assert "--project" in line and "--region" in line and "deploy --local" in line


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--project", "demo-project-123"], "--project"),
        (["--region", "europe-west4"], "--region"),
        (["--authorized-network", "10.0.0.0/8"], "--authorized-network"),
        (["--argocd-version", "v3.5.0"], "a version flag"),
    ],
)
def test_deploy_local_refuses_gcp_flags(flags: list[str], named: str, no_adc: Path) -> None:
    line = _one_line(CliRunner().invoke(cli, ["deploy", "--local", *flags]), 2)
    assert f"--local and {named} cannot be combined" in line
    assert not (no_adc / "home").exists()


# --------------------------------------------------------------------------- printed commands


def test_printed_commands_use_the_script_path_off_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from zenml_gcp_gitops.ui import self_command

    script = Path(sys.executable).with_name("zenml-gcp-gitops")
    require(None if script.exists() else f"the console script {script} (pip install -e '.[test]')")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert self_command() == str(script)
    monkeypatch.setenv("PATH", f"{script.parent}:/usr/bin:/bin")
    assert self_command() == "zenml-gcp-gitops"


def test_local_up_next_steps_work_as_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each command `local up` prints runs as printed from a shell whose venv is inactive."""
    from zenml_gcp_gitops.local.report import print_up

    script = Path(sys.executable).with_name("zenml-gcp-gitops")
    require(None if script.exists() else f"the console script {script} (pip install -e '.[test]')")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    from zenml_gcp_gitops import ui

    ui.console.cache_clear()
    base = tmp_path / "d"
    result = {
        "name": "demo", "dir": str(base), "stack": "demo-local", "zenml_url": "http://z",
        "mlflow_url": "http://m", "gcs_emulator_url": "http://g", "registry_url": None,
        "buckets": {"artifacts": "a", "mlflow": "m"}, "env_file": str(base / "env"),
        "credentials": {"zenml_admin": "za", "mlflow_admin": "ma", "ci_api_key": "k"},
        "db": "sqlite", "total_seconds": 1.0, "changed": True,
    }  # fmt: skip
    try:
        print_up(result)
    finally:
        ui.console.cache_clear()
    out = capsys.readouterr().out
    assert f'eval "$({script} local env --name demo --dir {base})"' in out
    assert f"Next: {script} local run-example --name demo --dir {base}" in out
    # and it runs: `local env` on a missing rehearsal is its one clear line, not "not found"
    proc = subprocess.run(
        ["bash", "-c", f"{script} local env --name demo --dir {base}"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 1 and "no local rehearsal" in proc.stderr, proc.stderr


# --------------------------------------------------------------------------- third-party noise


def test_google_python_version_warning_is_filtered_but_real_warnings_stay() -> None:
    code = (
        "import warnings, zenml_gcp_gitops.cli\n"
        "warnings.warn('You are using a Python version (3.11) which Google will stop "
        "supporting', FutureWarning)\n"
        "warnings.warn('a real deprecation of ours', FutureWarning)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Google will stop" not in proc.stderr
    assert "a real deprecation of ours" in proc.stderr


def test_children_get_the_same_filter() -> None:
    from zenml_gcp_gitops.ui import quiet_env

    env = quiet_env({"PYTHONWARNINGS": "error::DeprecationWarning", "PATH": os.environ["PATH"]})
    code = (
        "import warnings\n"
        "warnings.warn('You are using a Python version (3.11) past its end of life', "
        "FutureWarning)\n"
        "warnings.warn('real one', UserWarning)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60)  # fmt: skip
    assert "end of life" not in proc.stderr and "real one" in proc.stderr
    assert env["PYTHONWARNINGS"].startswith("error::DeprecationWarning,")


def test_plan_offline_prints_no_google_future_warning(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("zenml-gcp-gitops")
    require(None if script.exists() else f"the console script {script} (pip install -e '.[test]')")
    proc = subprocess.run(
        [str(script), "plan", "--offline", *GOOD, "-o", "json"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "FutureWarning" not in proc.stderr


def test_deploy_refuses_a_gitops_tree_with_placeholders(no_adc: Path) -> None:
    """The checkout `deploy --gitops-repo` runs from still has `render --offline` values."""
    rendered = CliRunner().invoke(
        cli, ["render", "--offline", "--placeholders", "--out", "gitops", *GOOD]
    )
    assert rendered.exit_code == 0, rendered.output
    repo = ["--gitops-repo", "https://github.com/acme/gitops.git"]
    line = _one_line(CliRunner().invoke(cli, ["deploy", *GOOD, *repo]), 2)
    assert "still holds placeholder values" in line and "render --offline" in line
    # the same tree rendered from real outputs is accepted (it then needs credentials)
    example = Path(__file__).parents[2] / "argocd" / "example"
    real = CliRunner().invoke(
        cli,
        ["render", "--config", str(example / "config.yaml"), "--outputs",
         str(example / "outputs.json"), "--out", "gitops"],
    )  # fmt: skip
    assert real.exit_code == 0, real.output
    for stale in list(Path("gitops").rglob("*")):
        if stale.is_file() and "PLACEHOLDER VALUES" in stale.read_text():
            stale.unlink()  # a file only the offline render wrote
    line = _one_line(CliRunner().invoke(cli, ["deploy", *GOOD, *repo]), 2)
    assert "Application Default Credentials" in line


def test_deploy_json_error_has_the_exit_code_like_every_command(no_adc: Path) -> None:
    """docs/cli.md promises `exit_code` in every error document; `deploy` printed its own."""
    result = CliRunner().invoke(cli, ["deploy", *GOOD, "-o", "json"])
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and "Application Default Credentials" in doc["error"]
    assert doc["exit_code"] == result.exit_code == 2
