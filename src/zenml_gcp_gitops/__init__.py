"""zenml-gcp-gitops: a production ZenML + MLflow stack on GCP, deployed with one command."""

# pyproject.toml takes the distribution's version from here.
__version__ = "0.2.0"
