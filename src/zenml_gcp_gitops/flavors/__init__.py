"""What ZenML imports wherever it loads the stack: laptops, CI jobs, step pods, Vertex jobs.

This is the light part of the distribution. It imports ZenML, its `gcp` integration and the
standard library only, never the rest of this package, so a pipeline environment needs
`pip install zenml-gcp-gitops` without the `[deploy]` extra. The names below need no ZenML
import (the plan and `register` spell them without loading ZenML).
"""

from __future__ import annotations

from .. import __version__

VERSION = __version__  # the package root: always imported first anyway

DISTRIBUTION = "zenml-gcp-gitops"

BUILD_ACCOUNT_FLAVOR = "gcp-build-account"
BUILD_ACCOUNT_FLAVOR_SOURCE = (
    "zenml_gcp_gitops.flavors.image_builder.GCPBuildAccountImageBuilderFlavor"
)
# Servers registered by 0.1 hold this source; the module stays importable (a re-export).
LEGACY_FLAVOR_SOURCES = ("zenml_gcp_gitops.image_builder.GCPBuildAccountImageBuilderFlavor",)

# The key of the flavor's config schema that records which deployments use the flavor and
# which release of this package wrote the schema (JSON Schema ignores `x-` keys).
OWNER_KEY = "x-zenml-gcp-gitops"


def pipeline_requirement() -> str:
    """The one line a pipeline environment (and every image ZenML builds) installs for us."""
    return f"{DISTRIBUTION}=={VERSION}"
