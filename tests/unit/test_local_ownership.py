"""`local down --purge` deletes only a folder `local up` marked as this rehearsal's, and
`local` commands never write into (or leave a lock in) a folder that is not a rehearsal.

Every path here is under tmp_path: on code without these checks the deletions would stay there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from zenml_gcp_gitops.cli import cli
from zenml_gcp_gitops.local import rehearsal
from zenml_gcp_gitops.local import services as sv

MARKER = ".zenml-gcp-gitops-rehearsal"


def _claim(d: Path, name: str) -> None:
    from zenml_gcp_gitops.local import owned

    owned.claim(d, name)


def _run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, ["local", *args], prog_name="zenml-gcp-gitops")
    return res.exit_code, res.stdout, res.stderr


def _user_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "thesis.tex").write_text("years of work\n")
    return path


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_purge_refuses_a_folder_that_holds_only_the_users_files(tmp_path: Path) -> None:
    d = _user_folder(tmp_path / "d")
    code, _, err = _run("down", "--purge", "--dir", str(d))
    assert code == 1
    line = _one_line(err)
    assert "refused" in line and str(d) in line and MARKER in line
    assert (d / "thesis.tex").read_text() == "years of work\n"
    assert sorted(p.name for p in d.iterdir()) == ["thesis.tex"]  # not even a .lock


def test_purge_refuses_a_rehearsal_of_another_name(tmp_path: Path) -> None:
    d = tmp_path / "d"
    _claim(d, "other")
    code, _, err = _run("down", "--purge", "--dir", str(d), "--name", "zenml")
    assert code == 1 and "holds the rehearsal 'other'" in _one_line(err)
    assert (d / MARKER).is_file()


def test_an_empty_dir_is_refused_not_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = _user_folder(tmp_path / "cwd")
    monkeypatch.chdir(cwd)
    for args in (["down", "--purge", "--dir", ""], ["status", "--dir", ""]):
        code, _, err = _run(*args)
        assert code == 2 and "empty path" in _one_line(err), args
    assert sorted(p.name for p in cwd.iterdir()) == ["thesis.tex"]


def test_a_name_that_leaves_local_is_refused_and_the_data_home_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _user_folder(tmp_path / "h")
    monkeypatch.setenv("ZENML_GCP_GITOPS_HOME", str(home))
    for name in ("..", "../..", "a/b", ""):
        code, _, err = _run("down", "--purge", "--name", name)
        assert code == 2 and "DNS label" in _one_line(err), name
    assert (home / "thesis.tex").is_file()


def test_the_data_home_is_never_purged_even_with_a_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rehearsal, "_require_modules", lambda: pytest.fail("up went on"))
    home = tmp_path / "h"
    monkeypatch.setenv("ZENML_GCP_GITOPS_HOME", str(home))
    _user_folder(home / "local" / "zenml")
    # a marker where none belongs (written by hand): the data home and local/ still stay
    for shared in (home, home / "local"):
        (shared / MARKER).write_text(
            json.dumps({"kind": "zenml-gcp-gitops local rehearsal", "name": "zenml"})
        )
        code, _, err = _run("down", "--purge", "--dir", str(shared))
        assert code == 1 and "holds more than one rehearsal" in _one_line(err)
        assert (home / "local" / "zenml" / "thesis.tex").is_file()
    with pytest.raises(sv.UserError, match="holds more than one rehearsal"):
        rehearsal.local_up("zenml", home)


def test_up_refuses_a_folder_with_someone_elses_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def went_on() -> None:
        raise AssertionError("local up went on into a folder that is not ours")

    monkeypatch.setattr(rehearsal, "_require_modules", went_on)  # no servers, ever
    d = _user_folder(tmp_path / "d")
    with pytest.raises(sv.UserError, match="not empty and holds no rehearsal of ours"):
        rehearsal.local_up("zenml", d)
    assert sorted(p.name for p in d.iterdir()) == ["thesis.tex"]


def test_purge_removes_a_marked_rehearsal(tmp_path: Path) -> None:
    d = tmp_path / "d"
    _claim(d, "zenml")
    sv.LocalState(name="zenml").save(d)
    (d / "zenml").mkdir()
    code, out, err = _run("down", "--purge", "--dir", str(d))
    assert code == 0, err
    assert not d.exists() and "Removed" in out


def test_down_of_a_non_rehearsal_leaves_no_lock_and_says_so(tmp_path: Path) -> None:
    d = _user_folder(tmp_path / "d")
    code, out, err = _run("down", "--dir", str(d))
    assert code == 0, err
    assert "No local rehearsal" in out
    assert sorted(p.name for p in d.iterdir()) == ["thesis.tex"]


def test_down_names_the_program_in_its_purge_hint(tmp_path: Path) -> None:
    d = tmp_path / "d"
    _claim(d, "zenml")
    sv.LocalState(name="zenml").save(d)
    code, out, _ = _run("down", "--dir", str(d))
    assert code == 0
    assert "local down --purge --dir" in out
    assert "(`local down" not in out  # the program name comes first


def test_status_of_a_missing_rehearsal_exits_non_zero(tmp_path: Path) -> None:
    code, out, _ = _run("status", "--dir", str(tmp_path / "none"))
    assert code == 1 and "No local rehearsal" in out


def test_status_does_not_call_a_service_stopped_while_its_worker_still_answers(
    tmp_path: Path,
) -> None:
    import os
    import signal

    from tests.unit.test_local_up_flow import _server
    from zenml_gcp_gitops.polling import poll_until

    base = tmp_path / "d"
    spec = _server("mlflow", sv.free_port(), 0, fork=True)  # the leader runs a worker
    svc = sv.start(spec, base)
    try:
        sv.wait_ready([(spec, svc)])
        sv.LocalState(name="zenml", services={"mlflow": svc}).save(base)
        os.kill(svc.pid, signal.SIGKILL)

        def leader_gone() -> bool | None:
            sv._reap(svc.pid)
            return True if not svc.alive() else None

        poll_until(leader_gone, timeout=30, interval=0.05, on_timeout=lambda: AssertionError())
        assert sv.http_ok(svc.url + "/")  # the orphaned worker still answers
        st = rehearsal.local_status("zenml", base)["services"]["mlflow"]
        assert st["running"] is True and st["healthy"] is False
        assert "workers still answer" in st["error"]
        code, out, _ = _run("status", "--dir", str(base))
        assert code == 1 and "stopped" not in out and "workers" in out
    finally:
        sv.stop(svc, timeout=10)
