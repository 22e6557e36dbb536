"""The training pipeline, registered in the Model Control Plane as `breast-cancer-classifier`."""

from __future__ import annotations

from zenml import Model, pipeline

from .steps import evaluate_model, load_data, quality_gate, split_data, train_model

MODEL_NAME = "breast-cancer-classifier"


@pipeline(
    model=Model(
        name=MODEL_NAME,
        description="Logistic regression on the Wisconsin breast-cancer dataset",
        license="BSD-3-Clause (dataset), Apache-2.0 (code)",
        tags=["example", "sklearn"],
    ),
    enable_cache=False,
)
def training_pipeline(
    test_size: float = 0.2,
    C: float = 1.0,
    max_iter: int = 500,
    min_accuracy: float = 0.9,
) -> None:
    dataset = load_data()
    train_set, test_set = split_data(dataset, test_size=test_size)
    model = train_model(train_set, C=C, max_iter=max_iter)
    metrics = evaluate_model(model, test_set)
    quality_gate(metrics, min_accuracy=min_accuracy)
