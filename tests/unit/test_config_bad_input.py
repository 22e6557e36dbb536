"""Bad input through the real CLI: exit code 2, ONE line naming the field and the fix, no
traceback, nothing created.

Every case runs through two entry points:
* `probe`: a test-only command built with the real `@config_options` under the real CLI
  group class, so flag parsing, YAML loading, validation and error rendering are the
  product's own code even before any command of the product exists;
* `plan --offline`: the real command, once it is registered (skipped until then).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from tests.conftest import require
from zenml_gcp_gitops.cli import _Group, cli
from zenml_gcp_gitops.cli.options import ConfigSource, config_options

GOOD = ["--project", "demo-project-123", "--region", "europe-west4"]


@click.group(cls=_Group)
def probe_cli() -> None:
    """Stand-in group with the product's error handling."""


@probe_cli.command("probe")
@config_options
def _probe(config: ConfigSource) -> None:
    click.echo(json.dumps(config.load().redacted()))


@dataclass
class Case:
    id: str
    args: list[str]
    expect: list[str]  # substrings of the one error line: the field and the fix
    files: dict[str, str | bytes] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None
    absent: list[str] = field(default_factory=list)  # must NOT appear (secrets)


def _cfg(text: str) -> dict[str, str | bytes]:
    return {"stack.yaml": text}


def _no_read(tmp: Path) -> None:
    (tmp / "locked.yaml").write_text("project: demo-project-123\n")
    (tmp / "locked.yaml").chmod(0)


CASES = [
    Case(
        "project-too-short",
        ["--project", "abc", "--region", "europe-west4"],
        ["project", "'abc'", "6-30"],
    ),
    Case(
        "project-uppercase",
        ["--project", "My-Project", "--region", "europe-west4"],
        ["project", "lowercase"],
    ),
    Case(
        "project-trailing-hyphen",
        ["--project", "my-project-", "--region", "europe-west4"],
        ["project", "not ending with a hyphen"],
    ),
    Case(
        "project-starts-with-digit",
        ["--project", "1project", "--region", "europe-west4"],
        ["project", "starting with a letter"],
    ),
    Case("project-missing", ["--region", "europe-west4"], ["project", "--project"]),
    Case(
        "region-unknown",
        ["--project", "demo-project-123", "--region", "mars-central1"],
        ["region", "'mars-central1'", "GKE Autopilot and Cloud SQL"],
    ),
    Case(
        "region-is-a-zone",
        ["--project", "demo-project-123", "--region", "europe-west4-a"],
        ["region", "zone", "'europe-west4'"],
    ),
    Case(
        "cidr-invalid",
        [*GOOD, "--authorized-network", "10.0.0.300/8"],
        ["authorized_networks", "'10.0.0.300/8'", "CIDR such as"],
    ),
    Case(
        "cidr-ipv4-any",
        [*GOOD, "--authorized-network", "0.0.0.0/0"],
        ["authorized_networks", "0.0.0.0/0", "whole internet", "VPN ranges"],
    ),
    Case(
        "cidr-ipv6-any",
        [*GOOD, "--authorized-network", "::/0"],
        ["authorized_networks", "::/0", "whole internet"],
    ),
    Case("name-too-long", [*GOOD, "--name", "a" * 21], ["name", "3-20"]),
    Case("name-too-short", [*GOOD, "--name", "ab"], ["name", "'ab'", "3-20"]),
    Case("name-not-dns-label", [*GOOD, "--name", "Prod_1"], ["name", "DNS label"]),
    Case(
        "name-one-letter",
        [*GOOD, "--name", "a"],
        ["name", "'a'", "3-20"],
    ),
    Case(
        "version-not-semver",
        [*GOOD, "--argocd-version", "latest"],
        ["versions.argocd", "'latest'", "1.2.3"],
    ),
    Case(
        "bad-choice-flag",
        [*GOOD, "--orchestrator", "airflow"],
        ["--orchestrator", "'airflow'", "kubernetes", "vertex"],
    ),
    Case("unknown-flag", [*GOOD, "--regoin", "x"], ["--regoin", "--help"]),
    Case(
        "state-url-credentials-masked",
        [*GOOD, "--state", "https://bob:hunter2@example.com/x"],
        ["state", "credentials", "Secret Manager"],
        absent=["hunter2"],
    ),
    # YAML files
    Case(
        "yaml-unknown-key",
        ["--config", "stack.yaml"],
        ["colour", "unknown key", "README"],
        files=_cfg("project: demo-project-123\nregion: europe-west4\ncolour: blue\n"),
    ),
    Case(
        "yaml-unknown-nested-key",
        ["--config", "stack.yaml"],
        ["versions.argocdd", "unknown key"],
        files=_cfg("project: demo-project-123\nregion: europe-west4\nversions: {argocdd: 1.2.3}\n"),
    ),
    Case(
        "yaml-wrong-type-bool",
        ["--config", "stack.yaml"],
        ["deletion_protection", "boolean", "'maybe'"],
        files=_cfg("project: demo-project-123\nregion: europe-west4\ndeletion_protection: maybe\n"),
    ),
    Case(
        "yaml-wrong-type-int",
        ["--config", "stack.yaml"],
        ["registry_keep_versions", "integer", "'ten'"],
        files=_cfg(
            "project: demo-project-123\nregion: europe-west4\nregistry_keep_versions: ten\n"
        ),
    ),
    Case(
        "yaml-wrong-type-list",
        ["--config", "stack.yaml"],
        ["authorized_networks", "must be"],
        files=_cfg(
            "project: demo-project-123\nregion: europe-west4\nauthorized_networks: {a: 1}\n"
        ),
    ),
    Case(
        "yaml-project-as-number",
        ["--config", "stack.yaml"],
        ["project", "string", "123456"],
        files=_cfg("project: 123456\nregion: europe-west4\n"),
    ),
    Case(
        "yaml-cidr-any-in-file",
        ["--config", "stack.yaml"],
        ["authorized_networks", "0.0.0.0/0", "whole internet"],
        files=_cfg(
            "project: demo-project-123\nregion: europe-west4\n"
            "authorized_networks: [198.51.100.0/24, 0.0.0.0/0]\n"
        ),
    ),
    Case(
        "file-missing",
        ["--config", "nope.yaml", *GOOD],
        ["nope.yaml", "does not exist", "--config"],
    ),
    Case(
        "file-is-a-directory",
        ["--config", "adir", *GOOD],
        ["--config", "adir", "directory"],
        setup=lambda tmp: (tmp / "adir").mkdir(),
    ),
    Case(
        "file-under-a-file",
        ["--config", "stack.yaml/inner.yaml", *GOOD],
        ["inner.yaml", "cannot be read", "--config"],
        files=_cfg("region: europe-west4\n"),
    ),
    Case(
        "file-not-utf8",
        ["--config", "stack.yaml", *GOOD],
        ["stack.yaml", "cannot be read", "UTF-8"],
        files={"stack.yaml": b"project: \xff\xfe\xfa\n"},
    ),
    Case(
        "file-empty",
        ["--config", "stack.yaml", *GOOD],
        ["stack.yaml", "empty", "project and region"],
        files=_cfg(""),
    ),
    Case(
        "file-only-comments",
        ["--config", "stack.yaml", *GOOD],
        ["stack.yaml", "empty"],
        files=_cfg("# nothing here yet\n"),
    ),
    Case(
        "file-invalid-yaml",
        ["--config", "stack.yaml"],
        ["stack.yaml", "not valid YAML", "line 2"],
        files=_cfg("project: demo-project-123\nregion: europe-west4: x\n"),
    ),
    Case(
        "file-not-a-mapping",
        ["--config", "stack.yaml"],
        ["stack.yaml", "mapping"],
        files=_cfg("- project\n- region\n"),
    ),
    # A flag overrides the file, so a bad flag wins over a good file value.
    Case(
        "flag-overrides-good-file-value",
        ["--config", "stack.yaml", "--region", "eu-west4"],
        ["region", "'eu-west4'"],
        files=_cfg("project: demo-project-123\nregion: europe-west4\n"),
    ),
]
if os.geteuid() != 0:  # root reads anything; the other unreadable cases cover it then
    CASES.append(
        Case(
            "file-no-permission",
            ["--config", "locked.yaml", *GOOD],
            ["locked.yaml", "cannot be read"],
            setup=_no_read,
        )
    )


def _entry_points() -> list[str]:
    return ["probe", "plan"]


def _invoke(entry: str, args: list[str]) -> Result:
    runner = CliRunner()
    if entry == "probe":
        return runner.invoke(probe_cli, ["probe", *args], catch_exceptions=True)
    assert "plan" in cli.commands, "`plan` is not registered"
    return runner.invoke(cli, ["plan", "--offline", *args], catch_exceptions=True)


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cwd and data dir, so 'nothing created' can be checked."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("ZENML_GCP_GITOPS_HOME", str(tmp_path / "home"))
    return work


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


@pytest.mark.parametrize("entry", _entry_points())
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2(case: Case, entry: str, workdir: Path) -> None:
    for name, content in case.files.items():
        path = workdir / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    if case.setup:
        case.setup(workdir)
    before = _tree(workdir)

    result = _invoke(entry, case.args)

    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("Error: ")
    for want in case.expect:
        assert want in line, f"{want!r} not in {line!r}"
    for secret in case.absent:
        assert secret not in result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    # Nothing created: neither beside the config nor in the data dir.
    assert _tree(workdir) == before
    assert _tree(workdir.parent / "home") == set()


def test_the_cases_cover_15_distinct_failures(workdir: Path) -> None:
    """Each case must reach a different check: 15 cases that all hit the same error would
    prove one thing 15 times."""
    errors: dict[str, str] = {}
    for case in CASES:
        for name, content in case.files.items():
            path = workdir / name
            path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
        if case.setup:
            case.setup(workdir)
        result = _invoke("probe", case.args)
        # the message with the echoed values blanked names the check that fired
        errors.setdefault(re.sub(r"'[^']*'", "'…'", result.stderr.strip()), case.id)
        for name in case.files:
            (workdir / name).unlink(missing_ok=True)
    assert len(errors) >= 15, sorted(errors)


# --------------------------------------------------------------------------- flags vs. file


def _ok(args: list[str]) -> dict[str, object]:
    result = CliRunner().invoke(probe_cli, ["probe", *args])
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_flags_override_file_values(workdir: Path) -> None:
    (workdir / "stack.yaml").write_text(
        "project: demo-project-123\nregion: us-central1\nname: fromfile\n"
        "authorized_networks: [198.51.100.0/24]\nversions: {argocd: v3.0.0}\n"
        "deletion_protection: true\n"
    )
    got = _ok(
        [
            "--config",
            "stack.yaml",
            "--region",
            "europe-west4",
            "--authorized-network",
            "203.0.113.0/24",
            "--mlflow-chart-version",
            "1.2.3",
            "--no-deletion-protection",
        ]
    )
    assert got["region"] == "europe-west4"  # flag wins
    assert got["name"] == "fromfile"  # file kept where no flag given
    assert got["authorized_networks"] == ["203.0.113.0/24"]  # a list flag replaces the list
    assert got["deletion_protection"] is False
    versions = got["versions"]
    assert isinstance(versions, dict)
    assert versions["argocd"] == "v3.0.0" and versions["mlflow_chart"] == "1.2.3"  # merged


def test_flag_fixes_a_bad_file_value(workdir: Path) -> None:
    (workdir / "stack.yaml").write_text("project: demo-project-123\nregion: europe-west4-a\n")
    assert _ok(["--config", "stack.yaml", "--region", "europe-west4"])["region"] == "europe-west4"


def test_file_alone_and_flags_alone_are_enough(workdir: Path) -> None:
    (workdir / "stack.yaml").write_text("project: demo-project-123\nregion: europe-west4\n")
    assert _ok(["--config", "stack.yaml"])["project"] == "demo-project-123"
    assert _ok(GOOD)["name"] == "zenml"


# --------------------------------------------------------------------------- conflicting flags


def test_deploy_offline_and_local_conflict(workdir: Path) -> None:
    deploy = cli.commands.get("deploy")
    opts = {o for p in (deploy.params if deploy else []) for o in getattr(p, "opts", [])}
    assert {"--offline", "--local"} <= opts, "`deploy --offline/--local` are not registered"
    result = CliRunner().invoke(cli, ["deploy", "--offline", "--local", *GOOD])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--offline" in lines[0] and "--local" in lines[0], result.stderr
    assert _tree(workdir) == set()


# --------------------------------------------------------------------------- a real process


@pytest.mark.parametrize(
    ("args", "want"),
    [
        (["--project", "abc", "--region", "europe-west4"], "Error: project: 'abc'"),
        (["--config", "missing.yaml"], "Error: config file missing.yaml does not exist"),
        ([*GOOD, "--orchestrator", "airflow"], "Error: Invalid value for '--orchestrator'"),
    ],
)
def test_console_script_bad_input(args: list[str], want: str, workdir: Path) -> None:
    script = Path(sys.executable).with_name("zenml-gcp-gitops")
    require(None if script.exists() else f"the console script {script} (pip install -e '.[test]')")
    proc = subprocess.run(
        [str(script), "plan", "--offline", *args],
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(want), proc.stderr
    assert proc.stdout == ""
    assert _tree(workdir) == set()
