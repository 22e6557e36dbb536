"""The parts of the pipeline rehearsal (tests/integration/test_pipeline_rehearsal.py).

- `Services`: the GCS emulator and MLflow (with basic auth) as the local rehearsal starts
  them, a GCE metadata server standing in for Workload Identity, and a real ZenML server
  that reaches both (it mints the connector's tokens, as the deployed server does).
- `register_from_offline_plan`: `plan --offline` -> `register --outputs plan.json` ->
  `ci-account create`, through the CLI; only the tracker URL then points at the local MLflow.
- `wheel_dir()`: the wheel of this checkout (ZGG_WHEEL_DIR from .ci/run, else built here).
- `ci_job(...)`: the workflow's `run:` steps in a fresh venv (ZGG_REHEARSAL_CI_VENV may hold
  one .ci/run prepared with the same Install step), the last one with the rehearsal hooks.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.gce_metadata import MetadataServer, gce_metadata
from tests.support.workflow import Step, run_step, workflow_steps
from tests.support.zenml_server import ZenServer, start_zenml_server

REPO = Path(__file__).resolve().parents[2]
SUPPORT = Path(__file__).resolve().parent
WORKFLOW = REPO / "examples" / "ci" / "github-actions.yml"
EMULATOR_ENV = {"GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}  # else gcsfs waits 60 s a call


@dataclass
class Services:
    base: Path
    gcs_url: str
    mlflow_url: str
    mlflow_login: dict[str, str]
    metadata: MetadataServer
    zenml: ZenServer

    def storage_env(self) -> dict[str, str]:
        """Where GCS is, for every process of the rehearsal (the CI job writes the run's logs
        to the artifact store with the connector's token, as on a GitHub runner)."""
        return {**EMULATOR_ENV, "STORAGE_EMULATOR_HOST": self.gcs_url}

    def emulation_env(self) -> dict[str, str]:
        """What stands in for Google's network in a pod: the emulator and the metadata server."""
        return {**self.storage_env(), **self.metadata.env()}


@contextlib.contextmanager
def services(base: Path, project: str, buckets: list[str], pipelines_sa: str) -> Iterator[Services]:
    from zenml_gcp_gitops.local import services as sv
    from zenml_gcp_gitops.local.specs import Layout, create_buckets, gcs_spec, mlflow_spec
    from zenml_gcp_gitops.names import LocalNames

    lay = Layout(base)
    lay.creds.mkdir(parents=True, mode=0o700, exist_ok=True)
    names = LocalNames("rehearsal")
    started: list[Any] = []
    try:
        gcs = gcs_spec(lay, sv.free_port())
        started.append(sv.start(gcs, base))
        sv.wait_ready([(gcs, started[-1])])
        gcs_url = started[-1].url
        create_buckets(gcs_url, [*buckets, names.mlflow_bucket])
        mlflow = mlflow_spec(lay, sv.free_port(), gcs.port, names)
        started.append(sv.start(mlflow, base))
        sv.wait_ready([(mlflow, started[-1])])
        login = json.loads(lay.mlflow_admin.read_text())
        with gce_metadata(project, pipelines_sa) as md:
            gcloud = base / "gcloud-config"  # no user's gcloud login: only the metadata server
            gcloud.mkdir(exist_ok=True)
            server = start_zenml_server(
                extra_env={
                    **EMULATOR_ENV,
                    "STORAGE_EMULATOR_HOST": gcs_url,
                    **md.env(),
                    "CLOUDSDK_CONFIG": str(gcloud),
                    "GOOGLE_APPLICATION_CREDENTIALS": "",
                }
            )
            try:
                yield Services(base, gcs_url, started[-1].url, login, md, server)
            finally:
                server.stop()
    finally:
        for svc in reversed(started):
            sv.stop(svc, timeout=20)


def _cli(args: list[str], env: dict[str, str]) -> Any:
    import pytest
    from click.testing import CliRunner

    from zenml_gcp_gitops.cli import cli

    with pytest.MonkeyPatch.context() as mp:
        for key in ("ZENML_STORE_API_KEY", "ZENML_STORE_URL"):
            mp.delenv(key, raising=False)
        for key, value in env.items():
            mp.setenv(key, value)
        res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, f"{args[0]} failed:\n{res.output[-3000:]}"
    return json.loads(res.output)


def register_from_offline_plan(
    svc: Services, workdir: Path, project: str, region: str, name: str
) -> dict[str, Any]:
    """The stack as `register` writes it from the offline plan's outputs, and the CI key."""
    import pytest

    from tests.fakes.gcp_secrets import FakeSecretManager
    from zenml_gcp_gitops.cli import zenml as zcli

    where = ["--project", project, "--region", region, "--name", name]
    plan = _cli(["plan", "--offline", *where, "--output", "json"], {})
    plan_file = workdir / "plan.json"
    plan_file.write_text(json.dumps(plan))
    admin = {
        "ZENML_STORE_USERNAME": svc.zenml.username,
        "ZENML_STORE_PASSWORD": svc.zenml.password,
        "MLFLOW_TRACKING_USERNAME": svc.mlflow_login["username"],
        "MLFLOW_TRACKING_PASSWORD": svc.mlflow_login["password"],
    }
    common = ["--outputs", str(plan_file), "--zenml-url", svc.zenml.url, "--output", "json"]
    registered = _cli(["register", *common], admin)
    # The deployed tracker is https://mlflow.<ip>.nip.io; here it is the local MLflow.
    _set_tracking_uri(svc, registered["components"]["experiment_tracker"]["id"])
    sm = FakeSecretManager()  # ci-account keeps the key in Secret Manager; here, in memory
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(zcli, "SECRET_ACCESS_FACTORY", lambda project, labels: sm)
        ci = _cli(["ci-account", "create", *where, *common], admin)
    (key,) = sm.enabled_values(ci["secret_id"])
    return {"plan": plan, "register": registered, "ci": ci, "api_key": key}


def _set_tracking_uri(svc: Services, component_id: str) -> None:
    from zenml.models import ComponentUpdate

    from tests.support.register_fixtures import admin_store

    store = admin_store(svc.zenml)
    comp = store.get_stack_component(component_id)
    conf = {**comp.configuration, "tracking_uri": svc.mlflow_url}
    store.update_stack_component(component_id, ComponentUpdate(configuration=conf))


def wheel_dir(workdir: Path) -> Path:
    """ZGG_WHEEL_DIR (the wheel .ci/run built once), else a wheel built here."""
    given = os.environ.get("ZGG_WHEEL_DIR")
    if given:
        if not list(Path(given).glob("zenml_gcp_gitops-*.whl")):
            raise FileNotFoundError(f"ZGG_WHEEL_DIR={given} holds no zenml_gcp_gitops wheel")
        return Path(given)
    out = workdir / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return out


def checkout(workdir: Path) -> Path:
    """What the pipelines repository holds: the examples and the workflow, no source tree."""
    ws = workdir / "workspace"
    shutil.copytree(
        REPO / "examples", ws / "examples", ignore=shutil.ignore_patterns("__pycache__")
    )
    (ws / ".github" / "workflows").mkdir(parents=True)
    shutil.copy2(WORKFLOW, ws / ".github" / "workflows" / "zenml-training.yml")
    return ws


def runner_env(venv: Path, home: Path, wheels: Path) -> dict[str, str]:
    """A runner's environment after setup-python: the venv first on PATH, nothing of ours."""
    home.mkdir(parents=True, exist_ok=True)
    real_home = Path.home()
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "LANG": "C.UTF-8",
        # the machine's caches, so a rehearsal does not download what CI already has
        "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", str(real_home / ".cache" / "pip")),
        "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(real_home / ".cache" / "uv")),
        # as if this checkout's wheel were published
        "PIP_FIND_LINKS": " ".join([*os.environ.get("PIP_FIND_LINKS", "").split(), str(wheels)]),
    }
    env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_") and k not in env})
    return env


def ci_steps(secrets: dict[str, str]) -> list[Step]:
    return workflow_steps(WORKFLOW, "train", secrets=secrets, vars={})


def make_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
    return path


def hook_conf(svc: Services, workdir: Path, wheels: Path) -> Path:
    conf = {
        "dir": str(workdir / "rehearsal"),
        "venv_image": str(SUPPORT / "venv_image.py"),
        "pod_orchestrator": str(SUPPORT / "pod_orchestrator.py"),
        "python": sys.executable,
        "find_links": [str(wheels)],
        "pod_emulation_env": svc.emulation_env(),
    }
    Path(conf["dir"]).mkdir(parents=True, exist_ok=True)
    path = workdir / "rehearsal.json"
    path.write_text(json.dumps(conf))
    return path


def run_steps(steps: list[Step], env: dict[str, str], cwd: Path, log: Path) -> list[Any]:
    """Each step in order, stopping at the first failure, as the runner does."""
    done = []
    for step in steps:
        proc = run_step(step, env, cwd, log, timeout=1500)
        done.append(proc)
        if proc.returncode != 0:
            break
    return done


def prepare_ci_venv(dest: Path, wheels: Path) -> dict[str, Any]:
    """The workflow's Install step in a fresh venv under `dest`, ahead of the test (.ci/run
    starts this while lint and mypy run); `install.json` records what ran and how it ended."""
    import time

    venv = make_venv(dest / "venv")
    ws = checkout(dest)
    install = ci_steps({})[0]
    t0 = time.monotonic()
    proc = run_step(
        install, runner_env(venv, dest / "home", wheels), ws, dest / "install.log", 1500
    )
    record = {
        "run": install.run,
        "requirements": (ws / "examples" / "requirements.txt").read_text(),
        "wheels": str(wheels),
        "returncode": proc.returncode,
        "stdout": proc.stdout,
        "stderr": proc.stderr,
        "seconds": round(time.monotonic() - t0),
    }
    _write_atomically(dest / "install.json", record)
    return record


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)  # a reader sees the whole record or none


def prepared_install(wheels: Path, install: Step) -> tuple[Path, Any] | None:
    """The venv and Install result from ZGG_REHEARSAL_CI_VENV, if it ran this very step.

    .ci/run starts it in the background and goes on to pytest: wait for its record."""
    import time

    given = os.environ.get("ZGG_REHEARSAL_CI_VENV")
    if not given:
        return None
    path = Path(given) / "install.json"
    deadline = time.monotonic() + 1800
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear in 30 minutes (see .ci/run's log)")
        time.sleep(2)
    record = json.loads(path.read_text())
    if "error" in record:
        return None  # the preparation itself broke: the test installs on its own
    same = (
        record["run"] == install.run
        and record["wheels"] == str(wheels)
        and record["requirements"] == (REPO / "examples" / "requirements.txt").read_text()
    )
    if not same:
        return None
    proc = subprocess.CompletedProcess(
        install.run, record["returncode"], record["stdout"], record["stderr"]
    )
    return Path(given) / "venv", proc


if __name__ == "__main__":  # python -m tests.support.pipeline_rehearsal prepare DIR
    if sys.argv[1:2] != ["prepare"] or len(sys.argv) != 3:
        sys.exit("usage: python -m tests.support.pipeline_rehearsal prepare DIR")
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    try:
        rec = prepare_ci_venv(out, wheel_dir(out))
    except Exception as e:
        _write_atomically(out / "install.json", {"error": f"{type(e).__name__}: {e}"})
        raise
    print(f"Install step: exit {rec['returncode']} in {rec['seconds']} s ({out})")
