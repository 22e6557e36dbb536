"""The examples' static parts: the GitHub Actions workflow and the run configs are valid."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    data = yaml.safe_load((EXAMPLES / "ci" / "github-actions.yml").read_text())
    assert isinstance(data, dict)
    return data


def _triggers(wf: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the bare key `on` as boolean True; GitHub reads it as "on".
    return dict(wf.get("on", wf.get(True)) or {})


def test_workflow_runs_on_push_and_pr_and_never_on_a_default_schedule(workflow: dict) -> None:
    on = _triggers(workflow)
    assert {"push", "pull_request", "workflow_dispatch"} <= set(on)
    assert "schedule" not in on, "scheduled retrain must be off by default"
    text = (EXAMPLES / "ci" / "github-actions.yml").read_text()
    # If someone uncomments the schedule, the job still needs the explicit opt-in variable.
    assert "# schedule:" in text
    assert "vars.ENABLE_SCHEDULED_RETRAIN == 'true'" in workflow["jobs"]["train"]["if"]


def test_workflow_logs_in_with_the_two_secrets_and_runs_the_pipeline(workflow: dict) -> None:
    assert workflow["permissions"] == {"contents": "read"}
    job = workflow["jobs"]["train"]
    assert job["runs-on"] == "ubuntu-latest"
    steps = job["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/checkout@") for u in uses)
    assert any(u.startswith("actions/setup-python@") for u in uses)
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "pip install -r examples/requirements.txt" in runs
    login = next(s for s in steps if "zenml login" in s.get("run", ""))
    assert set(login["env"].values()) == {
        "${{ secrets.ZENML_STORE_URL }}",
        "${{ secrets.ZENML_STORE_API_KEY }}",
        "${{ secrets.ZENML_ACTIVE_STACK_ID }}",
    }
    assert '--stack "${STACK_ID:-$ZENML_STACK}"' in login["run"]  # the deployed stack, by ID
    assert "--api-key" in login["run"]
    assert "$API_KEY" not in login["run"].split("<<<")[0], "the key must not be on the command line"
    assert "python examples/run.py" in runs
    for s in steps:
        for value in (s.get("with") or {}).values():
            assert "secrets." not in str(value)


def test_workflow_has_no_gcp_keys() -> None:
    text = (EXAMPLES / "ci" / "github-actions.yml").read_text().lower()
    for needle in ("google-github-actions/auth", "credentials_json", "google_application_credentials",
                   "gcp_sa_key", "service_account_key"):  # fmt: skip
        assert needle not in text


def test_ci_readme_says_where_to_copy_the_workflow() -> None:
    readme = (EXAMPLES / "ci" / "README.md").read_text()
    assert ".github/workflows/" in readme
    assert "ZENML_STORE_URL" in readme and "ZENML_STORE_API_KEY" in readme


@pytest.fixture(scope="module")
def pipeline_params() -> set[str]:
    sys.path.insert(0, str(EXAMPLES))
    try:
        from training.pipeline import training_pipeline
    finally:
        sys.path.remove(str(EXAMPLES))
    return set(inspect.signature(training_pipeline.entrypoint).parameters)


@pytest.mark.parametrize("name", ["local.yaml", "gcp.yaml"])
def test_run_configs_are_valid_zenml_run_configurations(
    name: str, pipeline_params: set[str]
) -> None:
    from zenml.config.pipeline_run_configuration import PipelineRunConfiguration

    data = yaml.safe_load((EXAMPLES / "configs" / name).read_text())
    cfg = PipelineRunConfiguration.model_validate(data)
    assert set(cfg.parameters or {}) <= pipeline_params
    assert cfg.enable_cache is False


def test_gcp_config_settings_match_the_kubernetes_orchestrator_and_docker() -> None:
    from zenml.config import DockerSettings
    from zenml.integrations.kubernetes.flavors.kubernetes_orchestrator_flavor import (
        KubernetesOrchestratorSettings,
    )

    data = yaml.safe_load((EXAMPLES / "configs" / "gcp.yaml").read_text())
    orch = KubernetesOrchestratorSettings.model_validate(data["settings"]["orchestrator"])
    assert orch.service_account_name == orch.step_pod_service_account_name == "zenml-pipelines"
    assert orch.pod_settings is not None and orch.pod_settings.resources["requests"]["cpu"]
    docker = DockerSettings.model_validate(data["settings"]["docker"])
    _check_docker_settings(docker)
    train = data["steps"]["train_model"]["settings"]["orchestrator"]
    KubernetesOrchestratorSettings.model_validate(train)
    # The pipelines KSA name is the one the deployment creates.
    from zenml_gcp_gitops.config import build_config

    cfg = build_config(overrides={"project": "my-proj-123", "region": "europe-west4"})
    assert orch.service_account_name == cfg.names.ksas["pipelines"]


@pytest.fixture(scope="module")
def steps() -> Any:
    sys.path.insert(0, str(EXAMPLES))
    try:
        from training import steps as mod
    finally:
        sys.path.remove(str(EXAMPLES))
    return mod


def test_load_and_split_keep_the_class_balance(steps: Any) -> None:
    data = steps.load_data.entrypoint()
    assert len(data) == 569 and steps.TARGET in data.columns
    train, test = steps.split_data.entrypoint(data, test_size=0.2, random_state=1)
    assert len(train) + len(test) == len(data) and len(test) == 114
    assert abs(train[steps.TARGET].mean() - test[steps.TARGET].mean()) < 0.02


def test_quality_gate_fails_the_run_below_the_threshold(steps: Any) -> None:
    with pytest.raises(RuntimeError, match=r"test accuracy 0\.850 is below 0\.900"):
        steps.quality_gate.entrypoint({"test_accuracy": 0.85}, min_accuracy=0.9)


def test_vertex_config_and_requirements_cover_the_vertex_orchestrator() -> None:
    from zenml.config import DockerSettings
    from zenml.integrations.gcp.flavors.vertex_orchestrator_flavor import (
        VertexOrchestratorSettings,
    )

    data = yaml.safe_load((EXAMPLES / "configs" / "vertex.yaml").read_text())
    VertexOrchestratorSettings.model_validate(data["settings"]["orchestrator"])
    _check_docker_settings(DockerSettings.model_validate(data["settings"]["docker"]))


def _check_docker_settings(docker: Any) -> None:
    """ZenML's own lists for the stack's integrations go into the image (plus the flavor's
    light part); the requirements file adds only the steps' packages and that light part."""
    from zenml_gcp_gitops import __version__

    assert docker.requirements == "requirements.txt"
    assert docker.install_stack_requirements is True
    assert docker.required_integrations == []
    reqs = (EXAMPLES / "requirements.txt").read_text().splitlines()
    pins = {line.split("#")[0].strip() for line in reqs} - {""}
    assert f"zenml-gcp-gitops=={__version__}" in pins  # never with an extra
    for pkg in ("kubernetes", "gcsfs", "mlflow", "kfp", "google-cloud"):
        assert not any(p.startswith(pkg) for p in pins), pkg  # ZenML's lists have them


def test_the_workflow_installs_the_stack_s_integrations_beside_zenml(workflow: dict) -> None:
    install = next(s for s in workflow["jobs"]["train"]["steps"] if s.get("name") == "Install")
    lines = [x.strip() for x in install["run"].splitlines() if x.strip()]
    assert lines == [
        "pip install -r examples/requirements.txt",
        "zenml integration export-requirements gcp kubernetes mlflow --output-file integrations.txt",
        "pip install -r examples/requirements.txt -r integrations.txt",
        "pip check",
    ]
