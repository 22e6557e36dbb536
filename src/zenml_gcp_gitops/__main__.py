"""`python -m zenml_gcp_gitops`: the CLI when its script is not at hand."""

from .cli import main

main()
