"""The steps: load, split, train, evaluate, and a quality gate.

Artifacts are typed (DataFrames, a scikit-learn Pipeline, a metrics dict), so ZenML picks the
right materializer and the dashboard shows them. Training and evaluation run with the stack's
experiment tracker (`experiment_tracker=True`): MLflow gets the params, metrics and the model.
"""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from zenml import get_step_context, log_metadata, step
from zenml.enums import ModelStages
from zenml.logger import get_logger

logger = get_logger(__name__)

TARGET = "target"


@step
def load_data() -> Annotated[pd.DataFrame, "dataset"]:
    """The Wisconsin breast-cancer dataset that ships with scikit-learn (no download)."""
    frame = load_breast_cancer(as_frame=True).frame
    logger.info("Loaded %d rows, %d features", len(frame), frame.shape[1] - 1)
    return frame


@step
def split_data(
    dataset: pd.DataFrame, test_size: float = 0.2, random_state: int = 42
) -> tuple[Annotated[pd.DataFrame, "train_set"], Annotated[pd.DataFrame, "test_set"]]:
    """A stratified split, so both sets keep the class balance."""
    train, test = train_test_split(
        dataset, test_size=test_size, random_state=random_state, stratify=dataset[TARGET]
    )
    return train.reset_index(drop=True), test.reset_index(drop=True)


@step(experiment_tracker=True)
def train_model(
    train_set: pd.DataFrame, C: float = 1.0, max_iter: int = 500
) -> Annotated[Pipeline, "model"]:
    """Scaler + logistic regression; params and the fitted model go to MLflow."""
    import mlflow

    model = Pipeline(
        [("scale", StandardScaler()), ("clf", LogisticRegression(C=C, max_iter=max_iter))]
    )
    X, y = train_set.drop(columns=[TARGET]), train_set[TARGET]
    model.fit(X, y)
    mlflow.log_params({"C": C, "max_iter": max_iter, "n_train": len(train_set)})
    mlflow.log_metric("train_accuracy", float(accuracy_score(y, model.predict(X))))
    mlflow.sklearn.log_model(model, name="model", input_example=X.head(3))
    return model


@step(experiment_tracker=True)
def evaluate_model(
    model: Pipeline, test_set: pd.DataFrame
) -> Annotated[dict[str, float], "metrics"]:
    """Test-set metrics, logged to MLflow and attached to the model version."""
    import mlflow

    X, y = test_set.drop(columns=[TARGET]), test_set[TARGET]
    pred = model.predict(X)
    metrics = {
        "test_accuracy": float(accuracy_score(y, pred)),
        "test_precision": float(precision_score(y, pred)),
        "test_recall": float(recall_score(y, pred)),
        "test_f1": float(f1_score(y, pred)),
    }
    mlflow.log_metrics(metrics)
    log_metadata(metadata={"metrics": metrics}, infer_model=True)
    logger.info("Test metrics: %s", metrics)
    return metrics


@step
def quality_gate(metrics: dict[str, float], min_accuracy: float = 0.9) -> None:
    """Fail the run when the model is not good enough; otherwise promote it to staging."""
    accuracy = metrics["test_accuracy"]
    if accuracy < min_accuracy:
        raise RuntimeError(
            f"quality gate failed: test accuracy {accuracy:.3f} is below {min_accuracy:.3f}"
        )
    model = get_step_context().model
    model.set_stage(ModelStages.STAGING, force=True)
    logger.info(
        "Quality gate passed (%.3f >= %.3f): %s is in staging",
        accuracy,
        min_accuracy,
        model.version,
    )
