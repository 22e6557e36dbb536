"""`zenml-gcp-gitops --help` is instant (no heavy imports) and every command explains itself."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tests.conftest import require
from zenml_gcp_gitops.cli import cli

HEAVY = ("zenml", "pulumi", "pulumi_gcp", "kubernetes", "mlflow", "google.cloud")
SCRIPT = Path(sys.executable).with_name("zenml-gcp-gitops")


def _heavy(modules: list[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def _all_commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for name, cmd in sorted(group.commands.items()):
        out.append((*path, name))
        if isinstance(cmd, click.Group):
            out.extend(_all_commands(cmd, (*path, name)))
    return out


COMMANDS = _all_commands(cli)


def test_console_script_help_imports_nothing_heavy(tmp_path: Path) -> None:
    """The installed console script, under -X importtime: every module it imports is listed."""
    require(None if SCRIPT.exists() else f"the console script {SCRIPT} (pip install -e '.[test]')")
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", str(SCRIPT), "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Usage: zenml-gcp-gitops" in proc.stdout
    imported = [
        line.split("|")[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    ]
    assert "click" in imported  # the parser works, so the list is real
    assert _heavy(imported) == []


def test_every_help_in_one_process_imports_nothing_heavy(tmp_path: Path) -> None:
    """`--help` of every command and subcommand stays light (lazy imports inside bodies)."""
    code = f"""
        import json, sys
        from click.testing import CliRunner
        from zenml_gcp_gitops.cli import cli
        failures = {{}}
        for path in {COMMANDS!r}:
            r = CliRunner().invoke(cli, [*path, "--help"], prog_name="zenml-gcp-gitops")
            if r.exit_code != 0:
                failures[" ".join(path)] = r.output[-500:]
        print(json.dumps({{"failures": failures, "modules": sorted(sys.modules)}}))
    """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.splitlines()[-1])
    assert got["failures"] == {}
    # Old-style namespace .pth files (google-cloud-aiplatform ships one) put an empty
    # `google.cloud` module in place before any code runs: not ours to avoid.
    startup = subprocess.run(
        [sys.executable, "-c", "import json, sys; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60, check=True,
    )  # fmt: skip
    preloaded = set(json.loads(startup.stdout.splitlines()[-1]))
    assert "zenml_gcp_gitops.cli" in got["modules"]
    assert _heavy([m for m in got["modules"] if m not in preloaded]) == []


def test_top_level_help_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "plan --offline" in result.output  # the quickstart line
    for name in cli.commands:
        assert name in result.output


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_every_command_has_a_useful_help(path: tuple[str, ...]) -> None:
    cmd: click.Command = cli
    for name in path:
        assert isinstance(cmd, click.Group)
        cmd = cmd.commands[name]
    # A sentence that says what the command does, not a placeholder.
    text = (cmd.help or "").strip()
    assert len(text) >= 20, f"{' '.join(path)}: help text too short: {text!r}"
    assert not text.lower().startswith(("todo", "tbd", "placeholder"))
    # Every option says what it is for.
    for param in cmd.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert (param.help or "").strip(), f"{' '.join(path)} {param.opts[0]} has no help"
    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="zenml-gcp-gitops")
    assert result.exit_code == 0, result.output
    assert f"Usage: zenml-gcp-gitops {' '.join(path)}" in result.output.replace("  ", " ")


def test_version() -> None:
    from zenml_gcp_gitops import __version__

    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_unknown_command_is_one_line_exit_2() -> None:
    result = CliRunner().invoke(cli, ["deplyo"])
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "deplyo" in lines[0] and "--help" in lines[0]
