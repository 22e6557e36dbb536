"""Run the training pipeline on a ZenML stack.

    python examples/run.py --stack zenml-local                      # the local rehearsal
    python examples/run.py --stack zenml --config configs/gcp.yaml  # GKE

The ZenML server comes from the environment (`ZENML_STORE_URL` + `ZENML_STORE_API_KEY`, as
in CI) or from `zenml login`. Prints one JSON line with the run's id, name and status.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # `training` is importable however this script is started

# Third-party noise a user can do nothing about; every other warning still shows.
for _message, _category in (
    ("You are using a Python version", FutureWarning),  # google-api-core, per package
    ("You are using a non-supported Python version", FutureWarning),
    ("Hint: Inferred schema contains integer column", UserWarning),  # MLflow, sklearn data
):
    warnings.filterwarnings("ignore", message=_message, category=_category)
NOISE = {
    "zenml.orchestrators.step_run_utils": "Models can be viewed in the dashboard using ZenML Pro",
    # fastai is not installed; ZenML's MLflow tracker still tries to switch its autolog off
    "zenml.integrations.mlflow.experiment_trackers.mlflow_experiment_tracker": (
        "Failed to disable MLflow autologging for the following frameworks: ['fastai']"
    ),
}


class _DropNoise(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


def quiet_noise() -> None:
    for name, prefix in NOISE.items():
        logging.getLogger(name).addFilter(_DropNoise(prefix))


def follow_analytics_setting() -> None:
    """The client config this run writes keeps the opt-in the environment asks for."""
    want = os.environ.get("ZENML_ANALYTICS_OPT_IN")
    if want is None:
        return
    from zenml.config.global_config import GlobalConfiguration

    GlobalConfiguration().analytics_opt_in = want.strip().lower() in ("1", "true", "yes", "on")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", help="stack to run on (default: the active stack)")
    parser.add_argument(
        "--config",
        type=Path,
        help="ZenML run config YAML (default: configs/local.yaml for a *-local stack, "
        "else configs/gcp.yaml)",
    )
    parser.add_argument("--min-accuracy", type=float, help="override the quality gate")
    args = parser.parse_args(argv)

    from training.pipeline import training_pipeline
    from zenml.client import Client

    quiet_noise()
    follow_analytics_setting()
    client = Client()
    if args.stack:
        client.activate_stack(args.stack)
    stack = client.active_stack_model.name
    config = args.config or HERE / "configs" / (
        "local.yaml" if stack.endswith("-local") else "gcp.yaml"
    )
    if not config.is_absolute() and not config.exists():
        config = HERE / config
    config = config.resolve()
    # The run configs name files relative to this folder (`requirements: requirements.txt`),
    # and ZenML reads them relative to the working directory: CI runs from the repo root.
    os.chdir(HERE)
    pipe = training_pipeline.with_options(config_path=str(config))
    if args.min_accuracy is not None:
        pipe = pipe.with_options(parameters={"min_accuracy": args.min_accuracy})
    try:
        run = pipe()
    except RuntimeError as e:  # a failed step (e.g. the quality gate); ZenML logged the details
        print(json.dumps({"stack": stack, "status": "failed", "error": str(e)}))
        return 1
    run = client.get_pipeline_run(run.id) if run is not None else None
    status = str(run.status.value) if run is not None else "submitted"
    print(
        json.dumps(
            {
                "run_id": str(run.id) if run else None,
                "run_name": run.name if run else None,
                "stack": stack,
                "status": status,
            }
        )
    )
    return 0 if status in ("completed", "submitted", "running", "initializing") else 1


if __name__ == "__main__":
    sys.exit(main())
