"""`render --out` deletes only files of its own inside --out, never writes into `/`, writes
plain 0644 files, and answers a bad --out / --outputs / --export with one line naming it.

Every write here goes under tmp_path. `--out /` is checked with the writer replaced by a
tripwire, so even code without the check writes nothing there.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from zenml_gcp_gitops.cli import cli
from zenml_gcp_gitops.errors import UserError
from zenml_gcp_gitops.gitops import render as R
from zenml_gcp_gitops.gitops import tree as T
from zenml_gcp_gitops.gitops.tree_files import TREE_MANIFEST

EXAMPLE = Path(__file__).resolve().parents[2] / "argocd" / "example"
SRC = ["--config", str(EXAMPLE / "config.yaml"), "--outputs", str(EXAMPLE / "outputs.json")]


def _tree(out: Path) -> None:
    from zenml_gcp_gitops.config import build_config
    from zenml_gcp_gitops.outputs import InfraOutputs

    cfg = build_config(EXAMPLE / "config.yaml", {})
    outputs = InfraOutputs.model_validate(json.loads((EXAMPLE / "outputs.json").read_text()))
    T.write_tree(R.render(cfg, outputs), out)


def _cli(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, list(args), prog_name="zenml-gcp-gitops")
    return res.exit_code, res.stdout, res.stderr


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "unexpected error" not in lines[0], lines[0]
    return lines[0]


def _list_in_manifest(out: Path, rel: str, victim: Path) -> None:
    path = out / TREE_MANIFEST
    data = json.loads(path.read_text())
    data["files"][rel] = hashlib.sha256(victim.read_bytes()).hexdigest()
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "inner-dotdot", "dot"])
def test_a_tampered_manifest_entry_outside_out_is_refused(tmp_path: Path, kind: str) -> None:
    out = tmp_path / "tree"
    _tree(out)
    victim = tmp_path / "victim.txt"
    victim.write_text("not render's\n")
    rel = {
        "dotdot": "../victim.txt",
        "absolute": str(victim),
        "inner-dotdot": "apps/../../victim.txt",
        "dot": "./../victim.txt",
    }[kind]
    _list_in_manifest(out, rel, victim)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(UserError) as err:
        _tree(out)
    assert rel[:60] in err.value.message and "refused" in err.value.message
    assert victim.read_text() == "not render's\n"
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # no write


def test_a_stale_entry_behind_a_linked_file_is_not_followed(tmp_path: Path) -> None:
    out = tmp_path / "tree"
    _tree(out)
    victim = tmp_path / "victim.txt"
    victim.write_text("not render's\n")
    (out / "apps" / "gone.yaml").symlink_to(victim)
    _list_in_manifest(out, "apps/gone.yaml", victim)
    _tree(out)
    assert victim.read_text() == "not render's\n"


@pytest.mark.parametrize("out", ["/", "//", "/tmp/..", ""])
def test_the_root_and_an_empty_out_are_refused(
    out: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def tripwire(*a: object, **k: object) -> None:
        raise AssertionError(f"render went on to write into {out!r}")

    monkeypatch.setattr(T, "write_tree", tripwire)
    monkeypatch.chdir(tmp_path)
    code, _, err = _cli("render", *SRC, "--out", out)
    assert code == 2
    line = _one_line(err)
    assert ("file system root" in line) if out else ("empty path" in line)
    assert list(tmp_path.iterdir()) == []


def test_the_writer_itself_refuses_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zenml_gcp_gitops.gitops import tree_files

    fake_root = tmp_path / "fake-root"
    real = os.path.realpath
    monkeypatch.setattr(
        os.path, "realpath", lambda p, **k: "/" if Path(p) == fake_root else real(p, **k)
    )
    with pytest.raises(UserError, match="file system root"):
        tree_files.write_files({"README.md": "x\n"}, fake_root)
    assert not fake_root.exists()


def test_rendered_files_are_0644_for_a_git_repo(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        _tree(tmp_path / "tree")
    finally:
        os.umask(old)
    modes = {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "tree").rglob("*") if p.is_file()}
    assert modes == {0o644}


def _fifo(tmp_path: Path) -> Path:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    return fifo


@pytest.mark.parametrize(
    "where", ["/dev/null", "fifo", "/proc/zgg-no-such", "/sys/zgg-no-such", "too-long", "file"]
)
def test_a_bad_out_is_one_line_naming_it(tmp_path: Path, where: str) -> None:
    if where == "fifo":
        where = str(_fifo(tmp_path))
    elif where == "too-long":
        where = str(tmp_path / ("a" * 300) / "tree")
    elif where == "file":
        (tmp_path / "f").write_text("x")
        where = str(tmp_path / "f" / "tree")
    code, _, err = _cli("render", *SRC, "--out", where)
    assert code in (1, 2)
    line = _one_line(err)
    assert where[:60] in line


def test_outputs_from_dev_zero_is_capped(tmp_path: Path) -> None:
    """An endless file: read up to the cap, then one line. In a child with a memory limit,
    so code without the cap fails with MemoryError instead of filling the machine."""
    import resource
    import subprocess
    import sys

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    proc = subprocess.run(
        [sys.executable, "-m", "zenml_gcp_gitops", "render", "--config",
         str(EXAMPLE / "config.yaml"), "--outputs", "/dev/zero", "--out", str(tmp_path / "t")],
        capture_output=True, text=True, timeout=120, preexec_fn=limit,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "/dev/zero is larger than 1 MiB" in _one_line(proc.stderr)


@pytest.mark.parametrize("where", ["/proc/self/mem", "fifo-empty", "missing"])
def test_a_bad_outputs_file_is_one_line(tmp_path: Path, where: str) -> None:
    if where == "fifo-empty":
        fifo = _fifo(tmp_path)
        where = str(fifo)
        # a writer that closes at once: the read sees end of file, never blocks
        import threading

        threading.Thread(target=lambda: open(fifo, "wb").close(), daemon=True).start()
    elif where == "missing":
        where = str(tmp_path / "none" / "outputs.json")
    code, _, err = _cli(
        "render", "--config", str(EXAMPLE / "config.yaml"), "--outputs", where,
        "--out", str(tmp_path / "tree"),
    )  # fmt: skip
    assert code == 2
    assert where in _one_line(err)
    assert not (tmp_path / "tree").exists()


@pytest.mark.parametrize(
    ("where", "said"),
    [
        ("", "empty path"),
        ("missing", "No such file or directory"),
        ("/dev/full", "No space left on device"),
        ("/proc/zgg-export.yaml", ""),
        ("too-long", "File name too long"),
    ],
)
def test_register_export_to_a_bad_path_is_one_line(tmp_path: Path, where: str, said: str) -> None:
    if where == "missing":
        where = str(tmp_path / "none" / "stack.yaml")
    elif where == "too-long":
        where = str(tmp_path / ("a" * 300 + ".yaml"))
    code, _, err = _cli("register", *SRC, "--export", where)
    assert code in (1, 2)
    line = _one_line(err)
    assert said in line and where[:60] in line
