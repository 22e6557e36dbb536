"""End to end, as CI runs it: `local up`, the example pipeline in a CI-like process, `local down`.

One rehearsal per module (cold `up` costs ~15-30 s): real ZenML server, MLflow server with
basic auth and the GCS emulator on free loopback ports, in a temp dir. The pipeline runs in a
separate process whose environment has only ZENML_STORE_URL, ZENML_STORE_API_KEY, the emulator
variables, PATH, HOME and a temp ZENML_CONFIG_PATH. `--no-registry` keeps the stack shape
fixed even where a `registry` binary is on PATH (the registry has its own unit test).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zenml_gcp_gitops.local import services as sv

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

NAME = "e2e"
STACK = f"{NAME}-local"
MODEL = "breast-cancer-classifier"
CLI = [sys.executable, "-c", "from zenml_gcp_gitops.cli import main; main()"]


def _cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "local", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or dict(os.environ),
    )


def _ours(base: Path) -> list[int]:
    """Every live process that belongs to this rehearsal: its dir is in argv or environment."""
    needle = str(base).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            blob = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in blob:
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("local-e2e") / "data"
    t0 = time.monotonic()
    proc = _cli("up", "--no-registry", "--name", NAME, "--dir", str(base), "--output", "json")
    up_seconds = time.monotonic() - t0
    try:
        assert proc.returncode == 0, f"local up failed:\n{proc.stderr[-4000:]}"
        result = json.loads(proc.stdout)
        result["_up_seconds"] = up_seconds
        result["_base"] = base
        yield result
    finally:
        _cli("down", "--name", NAME, "--dir", str(base))
        # Safety net: never leave a server behind, even if `down` itself is broken.
        state = sv.LocalState.load(base)
        for svc in state.services.values() if state else []:
            sv.stop(svc, timeout=10)


@pytest.fixture(scope="module")
def ci_env(rehearsal: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The pipeline environment exactly as `local env` describes it, resolved like a shell."""
    from zenml_gcp_gitops.local.pipeline_env import pipeline_env

    home = tmp_path_factory.mktemp("ci-home")
    env = {v.name: v.resolve() for v in pipeline_env(rehearsal["_base"])}
    assert set(env) == {
        "ZENML_STORE_URL",
        "ZENML_STORE_API_KEY",
        "ZENML_ACTIVE_STACK_ID",
        "STORAGE_EMULATOR_HOST",
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT",
        "ZENML_ANALYTICS_OPT_IN",
        "MLFLOW_DISABLE_TELEMETRY",
    }
    env.update(
        PATH=os.environ["PATH"],
        HOME=str(home),
        ZENML_CONFIG_PATH=str(home / "zenml-config"),
        ZENML_ANALYTICS_OPT_IN="false",  # no phoning home from tests
    )
    return env


@pytest.fixture(scope="module")
def pipeline_run(ci_env: dict[str, str], repo_root: Path) -> dict[str, Any]:
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(repo_root / "examples" / "run.py"), "--stack", STACK],
        capture_output=True, text=True, env=ci_env, timeout=400, cwd=ci_env["HOME"],
    )  # fmt: skip
    assert proc.returncode == 0, f"pipeline failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["_seconds"] = time.monotonic() - t0
    out["_output"] = proc.stdout + proc.stderr
    return out


STACK_CHECK = r"""
import json, sys
from zenml.client import Client
from zenml.enums import StackComponentType
from zenml.stack import Flavor
stack = Client().get_stack(sys.argv[1])
comps = {str(t.value): cs[0] for t, cs in stack.components.items()}
build = Client().get_flavor_by_name_and_type("gcp-build-account", StackComponentType.IMAGE_BUILDER)
print(json.dumps({
    "build_flavor": {"source": build.source, "is_custom": build.is_custom,
                     "config": Flavor.from_model(build).config_class.__name__},
    "flavors": {t: c.flavor_name for t, c in comps.items()},
    "artifact_path": comps["artifact_store"].configuration["path"],
    "tracking_uri": comps["experiment_tracker"].configuration["tracking_uri"],
    "tracking_password": comps["experiment_tracker"].configuration["tracking_password"],
}))
"""

VERIFY = r"""
import json, sys
from zenml.client import Client
c = Client()
run = c.get_pipeline_run(sys.argv[1])
steps = {name: str(s.status.value) for name, s in run.steps.items()}
arts = {}
for name, s in run.steps.items():
    for out_name, versions in s.outputs.items():
        for av in versions:
            arts[out_name] = av.uri
metrics = run.steps["evaluate_model"].outputs["metrics"][0].load()
model = run.steps["train_model"].outputs["model"][0].load()
test = run.steps["split_data"].outputs["test_set"][0].load()
pred_ok = float((model.predict(test.drop(columns=["target"])) == test["target"]).mean())
mv = c.get_model_version("{model}", run.model_version.number if run.model_version else "latest")
linked = sorted(a.name for a in c.list_artifact_versions(model_version_id=mv.id, size=50).items)
print(json.dumps({"status": str(run.status.value), "steps": steps, "artifacts": arts,
                  "metrics": metrics, "reloaded_accuracy": pred_ok,
                  "model_version": {"name": mv.model.name, "number": mv.number,
                                    "stage": str(getattr(mv.stage, "value", mv.stage)) if mv.stage else None},
                  "linked": linked, "stack": run.stack.name if run.stack else None}))
""".replace("{model}", MODEL)


@pytest.fixture(scope="module")
def verified(pipeline_run: dict[str, Any], ci_env: dict[str, str]) -> dict[str, Any]:
    """Read the run back through ZenML, in a CI-like process with the CI account's key."""
    # From a file, not `-c`: ZenML resolves sources relative to the main module's file.
    script = Path(ci_env["HOME"]) / "verify_run.py"
    script.write_text(VERIFY)
    proc = subprocess.run(
        [sys.executable, str(script), pipeline_run["run_id"]],
        capture_output=True, text=True, env=ci_env, timeout=180, cwd=ci_env["HOME"],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_up_registers_the_local_stack_with_the_expected_flavors(
    rehearsal: dict[str, Any], ci_env: dict[str, str]
) -> None:
    assert rehearsal["stack"] == STACK
    comps = rehearsal["register"]["components"]
    assert {t: c["flavor"] for t, c in comps.items()} == {
        "artifact_store": "gcp",
        "orchestrator": "local",
        "experiment_tracker": "mlflow",
        "image_builder": "local",
    }
    assert rehearsal["register"]["stack"]["name"] == STACK
    assert rehearsal["ci"]["service_account"]["name"] == f"{NAME}-ci"
    for key in ("zenml_admin", "mlflow_admin", "ci_api_key"):
        mode = Path(rehearsal["credentials"][key]).stat().st_mode & 0o777
        assert mode == 0o600, (key, oct(mode))
    # The stack as the server stores it, read by the CI account in a CI-like process.
    # From a file, not `-c`: ZenML loads a custom flavor relative to the main module's file.
    script = Path(ci_env["HOME"]) / "stack_check.py"
    script.write_text(STACK_CHECK)
    proc = subprocess.run(
        [sys.executable, str(script), STACK],
        capture_output=True, text=True, env=ci_env, timeout=120, cwd=ci_env["HOME"],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["flavors"] == {
        "artifact_store": "gcp",
        "orchestrator": "local",
        "experiment_tracker": "mlflow",
        "image_builder": "local",
    }
    # the GCP stack's Cloud Build flavor: registered on the real server, loadable by clients
    assert seen["build_flavor"] == {
        "source": "zenml_gcp_gitops.flavors.image_builder.GCPBuildAccountImageBuilderFlavor",
        "is_custom": True,
        "config": "GCPBuildAccountImageBuilderConfig",
    }
    assert seen["artifact_path"] == f"gs://{rehearsal['buckets']['artifacts']}"
    assert seen["tracking_uri"] == rehearsal["mlflow_url"]
    # MLflow credentials are references to a ZenML secret, never the password itself.
    assert seen["tracking_password"] == "{{" + f"{NAME}-local-mlflow-credentials.password" + "}}"
    admin = json.loads(Path(rehearsal["credentials"]["zenml_admin"]).read_text())
    assert admin["password"] not in json.dumps(rehearsal, default=str)


def test_zenml_secrets_are_encrypted_at_rest(rehearsal: dict[str, Any]) -> None:
    import base64
    import sqlite3

    db = rehearsal["_base"] / "zenml" / "zenml.db"
    with sqlite3.connect(db) as conn:
        rows = conn.execute('SELECT name, "values" FROM secret').fetchall()
    assert f"{NAME}-local-mlflow-credentials" in {r[0] for r in rows}
    pw = json.loads(Path(rehearsal["credentials"]["mlflow_admin"]).read_text())["password"]
    for _, value in rows:
        raw = value.encode() if isinstance(value, str) else bytes(value or b"")
        assert pw.encode() not in raw
        assert pw.encode() not in base64.b64decode(raw + b"==")


def test_output_and_env_hold_no_secret(rehearsal: dict[str, Any]) -> None:
    base = rehearsal["_base"]
    key = Path(rehearsal["credentials"]["ci_api_key"]).read_text().strip()
    pw = json.loads(Path(rehearsal["credentials"]["mlflow_admin"]).read_text())["password"]
    env_out = _cli("env", "--name", NAME, "--dir", str(base))
    assert env_out.returncode == 0
    assert "export ZENML_STORE_API_KEY=" in env_out.stdout
    for text in (env_out.stdout, (base / "env").read_text(), (base / "state.json").read_text()):
        assert key not in text and pw not in text
    # The export lines work in a real shell: the key comes back from its file.
    sh = subprocess.run(
        ["bash", "-c", f'eval "$({shlex.join(CLI)} local env --name {NAME} --dir {base})"; '
         'printf %s "$ZENML_STORE_API_KEY"'],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert sh.stdout == key


def test_example_run_is_quiet_and_follows_analytics(
    pipeline_run: dict[str, Any], ci_env: dict[str, str]
) -> None:
    """Third-party noise is filtered; the client config the run writes keeps analytics off."""
    out = pipeline_run["_output"]
    for noise in ("FutureWarning", "ZenML Pro", "Hint: Inferred schema", "['fastai']"):
        assert noise not in out, noise
    config = Path(ci_env["ZENML_CONFIG_PATH"]) / "config.yaml"
    assert "analytics_opt_in: false" in config.read_text()


def test_env_alone_activates_the_local_stack(
    rehearsal: dict[str, Any], ci_env: dict[str, str]
) -> None:
    """A shell with only `local env`'s variables is on the rehearsal's stack, not `default`."""
    proc = subprocess.run(
        [sys.executable, "-c",
         "from zenml.client import Client; print(Client().active_stack_model.name)"],
        capture_output=True, text=True, env=ci_env, timeout=120, cwd=ci_env["HOME"],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == STACK


def test_second_up_is_a_noop(rehearsal: dict[str, Any]) -> None:
    base = rehearsal["_base"]
    before = sv.LocalState.load(base)
    assert before is not None
    proc = _cli("up", "--no-registry", "--name", NAME, "--dir", str(base), "--output", "json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads(proc.stdout)
    assert again["started"] == []
    assert again["already_running"] == ["gcs", "mlflow", "zenml"]
    assert again["changed"] is False
    assert again["register"]["stack"]["id"] == rehearsal["register"]["stack"]["id"]
    after = sv.LocalState.load(base)
    assert after is not None
    assert {k: s.pid for k, s in after.services.items()} == {
        k: s.pid for k, s in before.services.items()
    }
    assert again["total_seconds"] < 15


def test_status_reports_every_service_healthy(rehearsal: dict[str, Any]) -> None:
    proc = _cli("status", "--name", NAME, "--dir", str(rehearsal["_base"]), "--output", "json")
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    assert status["healthy"] is True
    assert set(status["services"]) == {"gcs", "mlflow", "zenml"}


def test_example_pipeline_completes_on_the_local_stack(
    pipeline_run: dict[str, Any], verified: dict[str, Any]
) -> None:
    assert pipeline_run["status"] == "completed"
    assert verified["status"] == "completed"
    assert verified["stack"] == STACK
    assert set(verified["steps"]) == {
        "load_data", "split_data", "train_model", "evaluate_model", "quality_gate",
    }  # fmt: skip
    assert set(verified["steps"].values()) == {"completed"}


def test_artifacts_are_in_the_emulated_bucket_and_load_back(
    rehearsal: dict[str, Any],
    verified: dict[str, Any],
    ci_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gcsfs

    bucket = rehearsal["buckets"]["artifacts"]
    uris = verified["artifacts"]
    assert {"dataset", "train_set", "test_set", "model", "metrics"} <= set(uris)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", ci_env["STORAGE_EMULATOR_HOST"])
    fs = gcsfs.GCSFileSystem(token="anon", skip_instance_cache=True)
    for name, uri in uris.items():
        assert uri.startswith(f"gs://{bucket}/"), (name, uri)
        assert fs.find(uri), f"{name}: nothing stored under {uri}"
    # Loaded back through ZenML in the CI-like process: real values, not just files.
    assert verified["metrics"]["test_accuracy"] >= 0.9
    assert abs(verified["reloaded_accuracy"] - verified["metrics"]["test_accuracy"]) < 1e-9


def test_mlflow_run_has_the_params_metrics_and_model(
    rehearsal: dict[str, Any], pipeline_run: dict[str, Any], verified: dict[str, Any],
    ci_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import gcsfs
    from mlflow.tracking import MlflowClient

    login = json.loads(Path(rehearsal["credentials"]["mlflow_admin"]).read_text())
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", login["username"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", login["password"])
    client = MlflowClient(tracking_uri=rehearsal["mlflow_url"])
    exp = client.get_experiment_by_name("training_pipeline")
    assert exp is not None
    runs = client.search_runs(
        [exp.experiment_id], filter_string=f"attributes.run_name = '{pipeline_run['run_name']}'"
    )
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params["C"] == "1.0"
    assert run.data.metrics["test_accuracy"] == pytest.approx(verified["metrics"]["test_accuracy"])
    assert run.data.metrics["train_accuracy"] > 0.9
    # The logged model went through the server's artifact proxy into the emulated bucket.
    models = client.search_logged_models([exp.experiment_id])
    assert models, "no logged model"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", ci_env["STORAGE_EMULATOR_HOST"])
    fs = gcsfs.GCSFileSystem(token="anon", skip_instance_cache=True)
    stored = fs.find(f"gs://{rehearsal['buckets']['mlflow']}/")
    assert any(p.endswith("MLmodel") for p in stored), stored[:20]
    # And without credentials the server refuses: auth is on, as in production.
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException):
        MlflowClient(tracking_uri=rehearsal["mlflow_url"]).search_experiments()


def test_model_version_is_registered(verified: dict[str, Any]) -> None:
    mv = verified["model_version"]
    assert mv["name"] == MODEL
    assert mv["number"] >= 1
    assert mv["stage"] == "staging"  # the quality gate passed and promoted it
    assert {"model", "metrics"} <= set(verified["linked"])


def test_up_restarts_only_a_dead_service_on_its_old_port(
    rehearsal: dict[str, Any], verified: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the pipeline checks: the emulator dies, `status` says so, `up` brings it back."""
    base = rehearsal["_base"]
    state = sv.LocalState.load(base)
    assert state is not None
    gcs = state.services["gcs"]
    assert sv.stop(gcs, timeout=10)
    status = _cli("status", "--name", NAME, "--dir", str(base), "-o", "json")
    assert status.returncode == 1  # unhealthy -> non-zero, for scripts
    assert json.loads(status.stdout)["services"]["gcs"]["running"] is False
    proc = _cli("up", "--no-registry", "--name", NAME, "--dir", str(base), "-o", "json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads(proc.stdout)
    assert again["started"] == ["gcs"]
    assert again["already_running"] == ["mlflow", "zenml"]
    assert again["gcs_emulator_url"] == gcs.url  # same port: the env file stays valid
    assert again["changed"] is True  # a process was started; the stack itself is unchanged
    assert again["register"]["stack"]["id"] == rehearsal["register"]["stack"]["id"]
    # The emulator's data survived the restart (filesystem backend under the data dir).
    import gcsfs

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    fs = gcsfs.GCSFileSystem(token="anon", skip_instance_cache=True)
    assert fs.find(verified["artifacts"]["metrics"])


def _mlflow_call(url: str, user: str, password: str, path: str, body: Any = None) -> Any:
    import base64
    import urllib.request

    req = urllib.request.Request(
        url + path,
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"{}")


def test_mlflow_users_survive_a_restart_of_the_server(rehearsal: dict[str, Any]) -> None:
    """Users and permissions live in the auth database named by basic_auth.ini (as in the
    cluster), not in the server process: a user made before a restart still logs in after."""
    import configparser
    import secrets
    import urllib.error

    base = rehearsal["_base"]
    ini = base / "credentials" / "mlflow-basic-auth.ini"
    assert oct(ini.stat().st_mode & 0o777) == "0o600"
    conf = configparser.ConfigParser()
    conf.read(ini)
    assert conf["mlflow"]["database_uri"] == f"sqlite:///{base / 'mlflow' / 'auth.db'}"
    admin = json.loads(Path(rehearsal["credentials"]["mlflow_admin"]).read_text())
    url = rehearsal["mlflow_url"]
    user, pw = f"analyst-{secrets.token_hex(3)}", secrets.token_urlsafe(16)
    _mlflow_call(url, admin["username"], admin["password"], "/api/2.0/mlflow/users/create",
                 {"username": user, "password": pw})  # fmt: skip
    assert _mlflow_call(url, user, pw, "/api/2.0/mlflow/experiments/search?max_results=1")

    state = sv.LocalState.load(base)
    assert state is not None
    old = state.services["mlflow"]
    assert sv.stop(old, timeout=20)
    proc = _cli("up", "--no-registry", "--name", NAME, "--dir", str(base), "-o", "json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["started"] == ["mlflow"]
    new = sv.LocalState.load(base)
    assert new is not None and new.services["mlflow"].pid != old.pid
    assert _mlflow_call(url, user, pw, "/api/2.0/mlflow/experiments/search?max_results=1")
    with pytest.raises(urllib.error.HTTPError) as bad:
        _mlflow_call(url, user, pw + "x", "/api/2.0/mlflow/experiments/search?max_results=1")
    assert bad.value.code == 401


def test_no_secret_in_logs_state_or_pipeline_output(
    rehearsal: dict[str, Any], pipeline_run: dict[str, Any]
) -> None:
    base = rehearsal["_base"]
    values: list[str] = []
    for f in (base / "credentials").iterdir():
        text = f.read_text().strip()
        if text.startswith("{"):
            values.append(json.loads(text)["password"])
        elif not text.startswith("sqlite"):
            values.append(text)
    assert len(values) >= 6  # 2 admin passwords, API key, JWT, encryption and Flask keys
    scanned = 0
    for f in base.rglob("*"):
        if not f.is_file() or "credentials" in f.parts or f.suffix == ".db":
            continue
        if f.is_relative_to(base / "gcs" / "data"):
            continue  # pipeline artifacts: data, not ours to vet
        blob = f.read_bytes()
        scanned += 1
        for v in values:
            assert v.encode() not in blob, f"a secret is in {f}"
    assert scanned >= 5  # state.json, env, three logs at least
    for v in values:
        assert v not in pipeline_run["_output"]


def test_zz_down_leaves_no_process(rehearsal: dict[str, Any]) -> None:
    """Runs last in this module (name order): stops everything and checks nothing is left."""
    base = rehearsal["_base"]
    state = sv.LocalState.load(base)
    assert state is not None
    groups = [s.pid for s in state.services.values()]
    assert _ours(base), "the services should be running before down"
    proc = _cli("down", "--name", NAME, "--dir", str(base), "--output", "json")
    assert proc.returncode == 0, proc.stderr
    assert sorted(json.loads(proc.stdout)["stopped"]) == ["gcs", "mlflow", "zenml"]
    for pgid in groups:
        assert sv.group_members(pgid) == [], f"process group {pgid} still has members"
    assert _ours(base) == []
    assert (base / "zenml" / "zenml.db").exists()  # data kept without --purge
    status = json.loads(_cli("status", "--name", NAME, "--dir", str(base), "-o", "json").stdout)
    assert status["services"] == {}
    print(
        f"\ncold up {rehearsal['_up_seconds']:.1f} s (in-process {rehearsal['total_seconds']} s), "
        f"services ready {rehearsal['services_seconds']} s"
    )
