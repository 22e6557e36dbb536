"""zenml-gcp-gitops: a production ZenML + MLflow stack on GCP, deployed with one command."""

__version__ = "0.1.0"
