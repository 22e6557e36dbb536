"""The whole backup-restore cycle on the local rehearsal, with real servers:

register the stack and run the example pipeline; back up; delete the stack, the pipeline
run, the MLflow run and an MLflow user; restore; all of them are back (same IDs), and the
CI key the pipeline used still logs in.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zenml_gcp_gitops.local import services as sv

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

NAME = "bkp"
STACK = f"{NAME}-local"
CLI = [sys.executable, "-c", "from zenml_gcp_gitops.cli import main; main()", "local"]


def _cli(*args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


class MlflowAdmin:
    def __init__(self, url: str, login: dict[str, str]) -> None:
        self.url = url
        token = base64.b64encode(f"{login['username']}:{login['password']}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = self.url + path
        data = None
        if method == "GET" and body:
            url += "?" + urllib.parse.urlencode(body)
        elif body is not None:
            data = json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, headers=self.headers, method=method)
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read().decode()
        return json.loads(text) if text.strip().startswith("{") else text

    def status(self, method: str, path: str, body: dict[str, Any]) -> int:
        try:
            self.call(method, path, body)
        except urllib.error.HTTPError as e:
            return e.code
        return 200


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("local-backup") / "data"
    d = ["--name", NAME, "--dir", str(base)]
    proc = _cli("up", "--no-registry", *d, "-o", "json")
    try:
        assert proc.returncode == 0, proc.stderr[-4000:]
        yield {**json.loads(proc.stdout), "_base": base, "_d": d}
    finally:
        _cli("down", *d)
        state = sv.LocalState.load(base)
        for svc in state.services.values() if state else []:
            sv.stop(svc, timeout=10)


def test_backup_delete_restore_brings_back_stack_run_mlflow_run_and_user(
    rehearsal: dict[str, Any], repo_root: Path, tmp_path: Path
) -> None:
    from zenml.models import StackFilter

    from zenml_gcp_gitops.local.pipeline_env import pipeline_env
    from zenml_gcp_gitops.zenml.session import Credentials, connect

    base, d = rehearsal["_base"], rehearsal["_d"]
    env = {v.name: v.resolve() for v in pipeline_env(base)}
    env.update(PATH=os.environ["PATH"], HOME=str(tmp_path), ZENML_ANALYTICS_OPT_IN="false",
               ZENML_CONFIG_PATH=str(tmp_path / "zenml-config"))  # fmt: skip
    run = subprocess.run(
        [sys.executable, str(repo_root / "examples" / "run.py"), "--stack", STACK],
        capture_output=True, text=True, env=env, timeout=500, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    run_id = json.loads(run.stdout.strip().splitlines()[-1])["run_id"]

    zadmin = json.loads(Path(rehearsal["credentials"]["zenml_admin"]).read_text())
    madmin = json.loads(Path(rehearsal["credentials"]["mlflow_admin"]).read_text())
    mlflow = MlflowAdmin(rehearsal["mlflow_url"], madmin)
    exps = mlflow.call("GET", "/api/2.0/mlflow/experiments/search", {"max_results": 100})
    exp_ids = [e["experiment_id"] for e in exps["experiments"]]
    runs = mlflow.call("POST", "/api/2.0/mlflow/runs/search", {"experiment_ids": exp_ids})
    mlflow_run = runs["runs"][0]["info"]["run_id"]
    mlflow.call(
        "POST", "/api/2.0/mlflow/users/create", {"username": "analyst", "password": "An-4lyst-pw-1"}
    )

    # back up
    proc = _cli("backup", *d, "-o", "json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    backup = json.loads(proc.stdout)
    assert backup["known"]["stack"] == STACK
    assert backup["known"]["pipeline_run"]["id"] == run_id
    assert set(backup["databases"]) == {"zenml", "mlflow", "mlflow_auth"}
    assert backup["artifact_buckets"][f"{NAME}-local-artifacts"]["objects"] > 0
    listed = json.loads(_cli("backup", *d, "--list", "-o", "json").stdout)["backups"]
    assert [b["id"] for b in listed] == [backup["id"]]

    # lose data: the stack, the run, the MLflow run and user
    store = connect(
        rehearsal["zenml_url"], Credentials(zadmin["username"], zadmin["password"]), timeout=60
    )
    store.delete_run(run_id)
    stack = store.list_stacks(StackFilter(name=STACK)).items[0]
    store.delete_stack(stack.id)
    mlflow.call("POST", "/api/2.0/mlflow/runs/delete", {"run_id": mlflow_run})
    mlflow.call("DELETE", "/api/2.0/mlflow/users/delete", {"username": "analyst"})
    assert not store.list_stacks(StackFilter(name=STACK)).items
    assert mlflow.status("GET", "/api/2.0/mlflow/users/get", {"username": "analyst"}) == 404

    # without --yes and without a terminal: refused, nothing touched
    refused = _cli("restore", backup["id"], *d)
    assert refused.returncode == 1 and "pass --yes" in refused.stderr
    assert "overwrites the local ZenML, MLflow and MLflow auth databases" in refused.stderr

    proc = _cli("restore", backup["id"], *d, "--yes", "-o", "json")
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout)
    assert result["verified"]["stack"] is True and result["verified"]["pipeline_run"] is True
    assert all(s == f"restored from {backup['id']}" for s in result["databases"].values())

    store = connect(
        rehearsal["zenml_url"], Credentials(zadmin["username"], zadmin["password"]), timeout=60
    )
    assert store.list_stacks(StackFilter(name=STACK)).items[0].id == stack.id
    assert str(store.get_run(run_id).id) == run_id
    got = mlflow.call("GET", "/api/2.0/mlflow/runs/get", {"run_id": mlflow_run})
    assert got["run"]["info"]["lifecycle_stage"] == "active"
    assert (
        mlflow.call("GET", "/api/2.0/mlflow/users/get", {"username": "analyst"})["user"]["username"]
        == "analyst"
    )
    # the servers came back on the same ports, and the CI key still logs in
    state = sv.LocalState.load(base)
    assert state is not None and state.services["zenml"].url == rehearsal["zenml_url"]
    ci = connect(
        rehearsal["zenml_url"], Credentials(api_key=env["ZENML_STORE_API_KEY"]), timeout=60
    )
    assert ci.list_stacks(StackFilter(name=STACK)).items


def test_restore_of_an_unknown_backup_names_the_known_ones(rehearsal: dict[str, Any]) -> None:
    proc = _cli("restore", "20000101T000000Z", *rehearsal["_d"], "--yes")
    assert proc.returncode == 1
    assert "no local backup 20000101T000000Z" in proc.stderr


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=5):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def test_pause_then_resume_stops_and_starts_the_servers_with_data_intact(
    rehearsal: dict[str, Any],
) -> None:
    from zenml.models import StackFilter

    from zenml_gcp_gitops.zenml.session import Credentials, connect

    base, d = rehearsal["_base"], rehearsal["_d"]
    top = [*CLI[:-1]]
    madmin = json.loads(Path(rehearsal["credentials"]["mlflow_admin"]).read_text())
    zadmin = json.loads(Path(rehearsal["credentials"]["zenml_admin"]).read_text())
    mlflow = MlflowAdmin(rehearsal["mlflow_url"], madmin)
    exp = mlflow.call("POST", "/api/2.0/mlflow/experiments/create", {"name": "before-pause"})
    store = connect(
        rehearsal["zenml_url"], Credentials(zadmin["username"], zadmin["password"]), timeout=60
    )
    stack_id = store.list_stacks(StackFilter(name=STACK)).items[0].id

    for _ in range(2):  # the second pause finds it paused and changes nothing
        proc = subprocess.run([*top, "pause", "--local", *d, "-o", "json"],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.loads(proc.stdout)["paused"]["by"]
        state = sv.LocalState.load(base)
        assert state is not None and not state.services
        assert not _answers(rehearsal["zenml_url"]) and not _answers(rehearsal["mlflow_url"])

    proc = subprocess.run([*top, "resume", "--local", *d, "-o", "json"],
                          capture_output=True, text=True, timeout=400)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["resumed"] is True
    # the same URLs, the data written before the pause read back
    got = mlflow.call(
        "GET", "/api/2.0/mlflow/experiments/get", {"experiment_id": exp["experiment_id"]}
    )
    assert got["experiment"]["name"] == "before-pause"
    store = connect(
        rehearsal["zenml_url"], Credentials(zadmin["username"], zadmin["password"]), timeout=60
    )
    assert store.list_stacks(StackFilter(name=STACK)).items[0].id == stack_id
    again = subprocess.run([*top, "resume", "--local", *d, "-o", "json"],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert again.returncode == 0 and json.loads(again.stdout)["resumed"] is False
