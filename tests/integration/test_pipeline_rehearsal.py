"""A pipeline run on the GCP-shaped stack, as CI and the step pods would run it.

Real parts: a ZenML server, the stack `register` writes from the offline plan's outputs, the
CI account's API key, the GCS emulator as the artifact bucket, MLflow with basic auth, and a
GCE metadata server on loopback where Workload Identity would answer (the ZenML server
mints the connector's tokens from it, as the deployed server does).

1. The CI job: a fresh venv, and every `run:` step of examples/ci/github-actions.yml as
   written (secrets: the server URL and the key `ci-account create` made). The Install step
   resolves from the registries plus a wheel of this checkout, as if it were published.
2. The image: the run step goes through ZenML's own build path (requirements gathered for
   this stack and the example's run config, ZenML's Dockerfile); only Cloud Build is
   replaced, by a venv built from that Dockerfile with the installer it names, then `pip check`.
3. The step pods: the orchestrator pod and each step pod run in that venv with the
   environment ZenML's Kubernetes orchestrator gives them; only the Kubernetes API is
   replaced (tests/support/rehearsal_hooks). The run completes, its artifacts are in the
   emulated bucket, the MLflow run exists and the quality gate promotes the model version.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import pipeline_rehearsal as pr
from tests.support.register_fixtures import PROJECT, REGION

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

if os.environ.get("CI") != "true" and not os.environ.get("ZGG_PIPELINE_REHEARSAL"):
    pytest.skip(
        "installs two venvs from the registries: runs under CI=true or ZGG_PIPELINE_REHEARSAL=1",
        allow_module_level=True,
    )

NAME = "zenml"  # the default deployment: its stack is the workflow's default ZENML_STACK
MODEL = "breast-cancer-classifier"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rehearsal")


@pytest.fixture(scope="module")
def svc(workdir: Path) -> Iterator[pr.Services]:
    from tests.support.register_fixtures import make_cfg

    n = make_cfg(NAME).names
    with pr.services(
        workdir / "services", PROJECT, [n.artifact_bucket], n.sa_email("pipelines")
    ) as s:
        yield s


@pytest.fixture(scope="module")
def stack(svc: pr.Services, workdir: Path) -> dict[str, Any]:
    return pr.register_from_offline_plan(svc, workdir, PROJECT, REGION, NAME)


@pytest.fixture(scope="module")
def ci_job(svc: pr.Services, stack: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Every `run:` step of the workflow in a fresh venv; the results, timed."""
    wheels = pr.wheel_dir(workdir)
    ws = pr.checkout(workdir)
    steps = pr.ci_steps({"ZENML_STORE_URL": svc.zenml.url, "ZENML_STORE_API_KEY": stack["api_key"]})
    names = [s.name for s in steps]
    assert names[0] == "Install" and names[-1] == "Run the training pipeline", names
    log = workdir / "ci-job.log"
    t0 = time.monotonic()
    prepared = pr.prepared_install(wheels, steps[0])  # .ci/run ran Install meanwhile
    if prepared is not None:
        venv, install = prepared
        log.write_text(f"## Install (prepared, exit {install.returncode})\n{install.stderr}\n")
        todo, done = steps[1:-1], [install]
    else:
        venv = pr.make_venv(workdir / "ci-venv")
        todo, done = steps[:-1], []
    env = {**pr.runner_env(venv, workdir / "runner-home", wheels), **svc.storage_env()}
    if all(p.returncode == 0 for p in done):
        done += pr.run_steps(todo, env, ws, log)
    seconds = {"setup": time.monotonic() - t0}
    results = {s.name: p for s, p in zip(steps, done, strict=False)}
    if len(done) == len(steps) - 1 and all(p.returncode == 0 for p in done):
        hooks = {
            "PYTHONPATH": str(pr.SUPPORT / "rehearsal_hooks"),
            "ZGG_REHEARSAL_CONF": str(pr.hook_conf(svc, workdir, wheels)),
        }
        t1 = time.monotonic()
        results[names[-1]] = pr.run_steps([steps[-1]], {**env, **hooks}, ws, log)[0]
        seconds["run"] = time.monotonic() - t1
    print(f"\nrehearsal CI job: {json.dumps({k: round(v) for k, v in seconds.items()})} s")
    rdir = workdir / "rehearsal"
    return {
        "steps": results,
        "names": names,
        "log": log,
        "seconds": seconds,
        "image": _json(rdir / "image.json"),
        "pods": _json(rdir / "pods.json"),
        "submission": _json(rdir / "submission.json"),
        "wheels": wheels,
    }


def _json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def _explain(job: dict[str, Any]) -> str:
    return job["log"].read_text(errors="replace")[-8000:]


def test_ci_job_installs_logs_in_and_loads_the_stack(ci_job: dict[str, Any]) -> None:
    """Install and login as written; the run step then loads and validates the active
    stack (every flavor imported) before ZenML asks the image builder for an image."""
    for name in ci_job["names"][:-1]:
        proc = ci_job["steps"][name]
        assert proc.returncode == 0, f"step {name!r} failed:\n{_explain(ci_job)}"
    login = ci_job["steps"][ci_job["names"][-2]]
    describe = login.stdout + login.stderr
    assert f"'{NAME}'" in describe or f" {NAME} " in describe, describe[-3000:]
    assert ci_job["image"] is not None, (
        "the run step never reached the image build (the stack did not load):\n" + _explain(ci_job)
    )


def test_image_requirements_resolve_and_pip_check_is_clean(ci_job: dict[str, Any]) -> None:
    image = ci_job["image"]
    assert image is not None, _explain(ci_job)
    assert "error" not in image, image.get("error")
    assert image["pip_check"]["returncode"] == 0, image["pip_check"]["output"]
    assert image["dockerfile"].startswith("FROM python:3.11")
    # the stack's flavor is installed in the image, from this checkout's wheel
    (whl,) = ci_job["wheels"].glob("zenml_gcp_gitops-*.whl")
    version = whl.name.split("-")[1]
    assert image["packages"].get("zenml-gcp-gitops") == version, sorted(image["packages"])
    # what the image does not need (deploy-time only) stays out of it
    for deploy_only in ("pulumi", "pulumi-gcp"):
        assert deploy_only not in image["packages"], deploy_only
    # beyond ZenML's own lists for the stack's integrations, the stack asks only for the
    # light part of this package
    from zenml.integrations.registry import integration_registry

    stack_file = image["requirements_files"].get(".zenml_stack_integration_requirements", "")
    zenml_lists = {
        r for i in ("gcp", "kubernetes", "mlflow")
        for r in integration_registry.select_integration_requirements(i)
    }  # fmt: skip
    assert set(stack_file.split()) - zenml_lists == {f"zenml-gcp-gitops=={version}"}, stack_file
    site = next(Path(image["venv"]).glob("lib/python3.*/site-packages/zenml_gcp_gitops"))
    size = sum(f.stat().st_size for f in site.rglob("*") if f.is_file())
    print(f"\nthe light part in the image: {size / 1024:.0f} KiB installed")


@pytest.fixture(scope="module")
def finished(ci_job: dict[str, Any], svc: pr.Services, workdir: Path) -> dict[str, Any]:
    """The run as the server records it, read by an admin client in a separate process."""
    proc = ci_job["steps"].get(ci_job["names"][-1])
    assert proc is not None and ci_job["pods"] is not None, _explain(ci_job)
    assert "error" not in ci_job["pods"], ci_job["pods"]["error"]
    assert proc.returncode == 0, _explain(ci_job)
    printed = json.loads(proc.stdout.strip().splitlines()[-1])
    script = workdir / "read_run.py"
    script.write_text(READ_RUN)
    env = svc.zenml.client_env(
        ZENML_STORE_URL=svc.zenml.url,
        ZENML_STORE_USERNAME=svc.zenml.username,
        ZENML_STORE_PASSWORD=svc.zenml.password,
        **svc.emulation_env(),
    )
    read = subprocess.run(
        [sys.executable, str(script), printed["run_id"]],
        capture_output=True, text=True, env=env, timeout=300, cwd=workdir,
    )  # fmt: skip
    assert read.returncode == 0, read.stderr[-4000:]
    return {"printed": printed, **json.loads(read.stdout.strip().splitlines()[-1])}


READ_RUN = r"""
import json, sys
from zenml.client import Client
c = Client()
run = c.get_pipeline_run(sys.argv[1])
arts = {}
for name, s in run.steps.items():
    for out, versions in s.outputs.items():
        arts[out] = versions[0].uri
mv = run.model_version
print(json.dumps({
    "status": str(run.status.value),
    "stack": run.stack.name if run.stack else None,
    "steps": {n: str(s.status.value) for n, s in run.steps.items()},
    "artifacts": arts,
    "metrics": run.steps["evaluate_model"].outputs["metrics"][0].load(),
    "model": mv.model.name if mv else None,
    "stage": str(getattr(mv.stage, "value", mv.stage)) if mv and mv.stage else None,
}))
"""


def test_step_pods_run_the_pipeline_to_a_passing_quality_gate(
    ci_job: dict[str, Any], finished: dict[str, Any], svc: pr.Services
) -> None:
    assert finished["printed"]["status"] == "completed"
    assert finished["status"] == "completed"
    assert finished["stack"] == NAME
    steps = {"load_data", "split_data", "train_model", "evaluate_model", "quality_gate"}
    assert finished["steps"] == dict.fromkeys(steps, "completed")
    pods = ci_job["pods"]
    assert pods["pods"][0]["pod"] == "orchestrator"
    assert {p["pod"] for p in pods["pods"][1:]} == steps
    assert pods["orchestrator"]["flavors"]["image_builder"] == "gcp-build-account"
    # the pods authenticated to ZenML with the run's token, not the CI key
    assert "ZENML_STORE_API_TOKEN" in pods["step_env_keys"]
    assert "ZENML_STORE_API_KEY" not in pods["step_env_keys"]
    assert finished["model"] == MODEL and finished["stage"] == "staging"  # the gate passed
    assert finished["metrics"]["test_accuracy"] >= 0.9
    # Google credentials came from the metadata server (Workload Identity), via the server
    assert svc.metadata.tokens_issued > 0


def test_artifacts_are_in_the_emulated_bucket(finished: dict[str, Any], svc: pr.Services) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage  # type: ignore[attr-defined,unused-ignore]

    from tests.support.register_fixtures import make_cfg

    bucket = make_cfg(NAME).names.artifact_bucket
    client = storage.Client(
        project="test",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": svc.gcs_url},
    )
    stored = {b.name for b in client.list_blobs(bucket)}
    uris = finished["artifacts"]
    assert {"dataset", "train_set", "test_set", "model", "metrics"} <= set(uris)
    for name, uri in uris.items():
        assert uri.startswith(f"gs://{bucket}/"), (name, uri)
        prefix = uri.removeprefix(f"gs://{bucket}/")
        assert any(s.startswith(prefix) for s in stored), f"{name}: nothing under {uri}"


def test_mlflow_run_exists_with_its_metrics(
    finished: dict[str, Any], svc: pr.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", svc.mlflow_login["username"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", svc.mlflow_login["password"])
    client = MlflowClient(tracking_uri=svc.mlflow_url)
    exp = client.get_experiment_by_name("training_pipeline")
    assert exp is not None
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=f"attributes.run_name = '{finished['printed']['run_name']}'",
    )
    assert len(runs) == 1
    assert runs[0].data.metrics["test_accuracy"] == pytest.approx(
        finished["metrics"]["test_accuracy"]
    )
