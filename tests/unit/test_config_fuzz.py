"""Hostile config files and flags: each gives one line and exit 2, never a traceback or a hang.

The bad files are data (tests/data/bad_configs, with the expected start of each error in
EXPECTED.tsv); a property test feeds random YAML to the loader.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import require
from zenml_gcp_gitops.cli import cli
from zenml_gcp_gitops.config import build_config
from zenml_gcp_gitops.config_file import MAX_CONFIG_BYTES, load_yaml
from zenml_gcp_gitops.errors import ConfigError, UserError

DATA = Path(__file__).parents[1] / "data" / "bad_configs"
GOOD = ["--project", "demo-project-123", "--region", "europe-west4"]
H = "project: demo-project-123\nregion: europe-west4\n"


def _expected() -> list[tuple[str, str]]:
    rows = []
    for line in (DATA / "EXPECTED.tsv").read_text().splitlines():
        if line and not line.startswith("#"):
            name, want = line.split("\t", 1)
            rows.append((name, want))
    return rows


EXPECTED = _expected()


def _plan(args: list[str], **kw: object) -> Result:
    return CliRunner().invoke(cli, ["plan", "--offline", *args], catch_exceptions=True, **kw)  # type: ignore[arg-type]


def _one_line(result: Result) -> str:
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr[:2000]
    assert result.stdout == ""
    assert lines[0].startswith("Error: ")
    return lines[0].removeprefix("Error: ")


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZENML_GCP_GITOPS_HOME", str(tmp_path / "home"))


def test_every_bad_file_has_an_expectation() -> None:
    on_disk = {p.name for p in DATA.iterdir() if p.name != "EXPECTED.tsv"}
    assert on_disk == {name for name, _ in EXPECTED}
    assert len(EXPECTED) >= 40


@pytest.mark.parametrize(("name", "want"), EXPECTED, ids=[n for n, _ in EXPECTED])
def test_bad_file_gives_one_line(name: str, want: str) -> None:
    path = DATA / name
    line = _one_line(_plan(["--config", str(path)]))
    assert line.startswith(want.replace("{path}", f"config file {path}")), line
    assert len(line) < 400


def test_20000_cidrs_refused_at_gke_limit(tmp_path: Path) -> None:
    body = "".join(f"- 10.{i // 65536}.{i // 256 % 256}.{i % 256}/32\n" for i in range(20000))
    (tmp_path / "c.yaml").write_text(H + "authorized_networks:\n" + body)
    line = _one_line(_plan(["--config", str(tmp_path / "c.yaml")]))
    assert line.startswith("authorized_networks: 20000 networks given, but GKE accepts at most 50")
    many = [a for i in range(51) for a in ("--authorized-network", f"10.1.0.{i}/32")]
    assert "51 networks" in _one_line(_plan([*GOOD, *many]))
    fifty = [a for i in range(50) for a in ("--authorized-network", f"10.1.0.{i}/32")]
    assert _plan([*GOOD, *fifty, "-o", "json"]).exit_code == 0


# --------------------------------------------------------------------------- hostile flags


@pytest.mark.parametrize(
    ("args", "want"),
    [
        (["--project", "demo\nproject"], "project: contains the unprintable character U+000A"),
        (["--name", "prod\x1b[2J"], "name: contains the unprintable character U+001B"),
        (["--gitops-revision", "main branch"], "gitops_revision: 'main branch' is not a Git"),
        (["--gitops-path", "../../../etc"], "gitops_path: '../../../etc' is not a folder"),
        (["--authorized-network", "10.0.0.1/8"], "authorized_networks: '10.0.0.1/8' has host"),
        (["--name", "\ud800"], "name: contains the unprintable character U+D800"),
    ],
)
def test_hostile_flag_gives_one_line(args: list[str], want: str) -> None:
    # the later --project/--name wins over GOOD's (click keeps the last)
    line = _one_line(_plan([*GOOD, *args]))
    assert line.startswith(want), line


def test_huge_flag_value_is_cut_in_the_error() -> None:
    big = "a" * 10_000_000
    line = _one_line(_plan(["--project", big, "--region", "europe-west4"]))
    assert line.startswith("project: 'aaaa")
    assert "10000000 chars" in line
    assert len(line) < 400


def test_long_unknown_key_and_bad_value_are_cut(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(H + "sql_tier: " + "x" * 5000 + "\n")
    line = _one_line(_plan(["--config", str(tmp_path / "c.yaml")]))
    assert line.startswith("sql_tier: 'xxx") and "5000 chars" in line and len(line) < 400


# --------------------------------------------------------------------------- normalised, accepted


def _ok_plan(args: list[str], **kw: object) -> dict[str, object]:
    result = _plan([*args, "-o", "json"], **kw)
    assert result.exit_code == 0, (result.output, result.exception)
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_bom_and_crlf_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "win.yaml"
    path.write_bytes(
        b"\xef\xbb\xbfproject: demo-project-123\r\nregion: europe-west4\r\nname: prod\r\n"
    )
    cfg = build_config(path)
    assert (cfg.project, cfg.region, cfg.name) == ("demo-project-123", "europe-west4", "prod")


def test_trailing_dot_in_domain_is_normalised() -> None:
    cfg = build_config(None, {"project": "demo-project-123", "region": "europe-west4",
                              "domain": "ML.example.com."})  # fmt: skip
    assert cfg.domain == "ml.example.com"


def test_dates_and_ssh_user_stay_accepted(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(H + "gitops_revision: 2024-01-01\ngitops_repo: ssh://git@github.com/a/b.git\n"
                    "gitops_path: ./deploy/gitops/\n")  # fmt: skip
    cfg = build_config(path)
    assert cfg.gitops_revision == "2024-01-01"
    assert cfg.gitops_repo == "ssh://git@github.com/a/b.git"
    assert cfg.gitops_path == "deploy/gitops"


def test_config_from_stdin() -> None:
    got = _ok_plan(["--config", "-"], input=H + "name: fromstdin\n")
    assert "fromstdin" in json.dumps(got)


def _script() -> Path:
    script = Path(sys.executable).with_name("zenml-gcp-gitops")
    require(None if script.exists() else f"the console script {script} (pip install -e '.[test]')")
    return script


def test_process_substitution_works(tmp_path: Path) -> None:
    script = _script()
    proc = subprocess.run(
        ["bash", "-c", f"{script} plan --offline -o json --config <(printf '{H}name: piped\\n')"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "piped" in proc.stdout


def test_endless_device_ends_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(_script()), "plan", "--offline", "--config", "/dev/zero"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == [
        "Error: config file /dev/zero is larger than 1 MiB (a deployment config is a few lines "
        "of YAML; check the --config path)"
    ]


def test_stdin_that_never_ends_is_capped() -> None:
    with pytest.raises(ConfigError, match="larger than 1 MiB"):
        _load_stdin(b"# " + b"x" * (MAX_CONFIG_BYTES + 10))


def _load_stdin(data: bytes) -> object:
    import io

    class _In:
        buffer = io.BytesIO(data)

    saved = sys.stdin
    sys.stdin = _In()  # type: ignore[assignment]
    try:
        return load_yaml(Path("-"))
    finally:
        sys.stdin = saved


# --------------------------------------------------------------------------- property test

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
    st.text(max_size=40), st.sampled_from(["europe-west4", "demo-project-123", "10.0.0.0/8"]),
)  # fmt: skip
_keys = st.one_of(
    st.sampled_from(["project", "region", "name", "versions", "authorized_networks", "domain",
                     "gitops_repo", "gitops_path", "gitops_revision", "state", "argocd"]),
    st.text(max_size=12),
)  # fmt: skip
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=4)),
    max_leaves=20,
)
_fragments = st.lists(
    st.sampled_from(["!!binary ", "!!set ", "&a ", "*a", "[", "]", "{", "}", ": ", "- ", "\n",
                     "  ", "'", '"', "\\ud800", "#", "? ", "---\n", "\t", "%YAML 1.1\n", "!x ",
                     "9" * 60, "\r\n", "\ufeff", "\x00", "\x85", "project", "versions"]),
    max_size=30,
).map("".join)  # fmt: skip


def _only_user_errors(raw: bytes) -> None:
    with tempfile.NamedTemporaryFile(suffix=".yaml") as f:
        f.write(raw)
        f.flush()
        try:
            build_config(Path(f.name), {"project": None})
        except UserError as e:
            assert "\n" not in str(e) and len(e.message) < 1000
        # anything else propagates and fails the test


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_values)
def test_random_yaml_documents_only_raise_user_error(value: object) -> None:
    try:
        text = yaml.safe_dump(value, allow_unicode=True)
    except yaml.YAMLError:
        return
    _only_user_errors(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_fragments, st.binary(max_size=20))
def test_random_yaml_text_only_raises_user_error(text: str, noise: bytes) -> None:
    _only_user_errors(H.encode() + text.encode("utf-8", "surrogatepass") + noise)


def test_no_output_carries_url_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused before anything is written: not in stdout, stderr, the data dir or the cwd."""
    monkeypatch.chdir(tmp_path)
    token = "ghp_S3CRETtoken"
    for cmd in (["plan", "--offline", "-o", "json"], ["render", "--offline", "--placeholders",
                 "--out", "tree"], ["deploy", "--dry-run", "-o", "json"], ["status", "-o", "json"]):  # fmt: skip
        result = CliRunner().invoke(
            cli, [*cmd, *GOOD, "--gitops-repo", f"https://bob:{token}@github.com/a/b.git"]
        )
        assert result.exit_code == 2, (cmd, result.output)
        assert token not in result.output
        for p in tmp_path.rglob("*"):
            if p.is_file():
                assert token not in p.read_text(errors="replace"), p
    assert os.environ.get("ZENML_GCP_GITOPS_HOME")
