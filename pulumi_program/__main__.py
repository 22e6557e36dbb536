"""Entry point for the Pulumi CLI (`pulumi up` in this directory).

Builds the same stack as the zenml-gcp-gitops CLI. Each `DeploymentConfig` field is read
from Pulumi config under its own name (`pulumi config set region europe-west4`); lists are
comma-separated and `versions` and `estimate` take a JSON object.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pulumi

from zenml_gcp_gitops.config import DeploymentConfig, build_config
from zenml_gcp_gitops.errors import ConfigError

# Run as a script by the Pulumi CLI, so import the program as a package: from a checkout
# (`pulumi_program` next to `src/`) or from an installed wheel (inside `zenml_gcp_gitops`).
_HERE = Path(__file__).resolve().parent
if _HERE.parent.name == "zenml_gcp_gitops":
    from zenml_gcp_gitops.pulumi_program.program import build
else:
    sys.path.insert(0, str(_HERE.parent))
    from pulumi_program.program import build


def config_from_pulumi() -> DeploymentConfig:
    conf = pulumi.Config()
    values: dict[str, Any] = {}
    for field in DeploymentConfig.model_fields:
        raw = conf.get(field)
        if raw is None:
            continue
        if field in ("versions", "estimate"):
            values[field] = json.loads(raw)
        elif field in (
            "deletion_protection",
            "force_destroy_buckets",
            "analytics",
            "gitops_repo_private",
            "create_dns_zone",
            "monitoring",
        ):
            values[field] = conf.get_bool(field)
        elif field in ("registry_keep_versions", "noncurrent_version_days"):
            values[field] = conf.get_int(field)
        else:
            values[field] = raw
    try:
        return build_config(None, values)
    except ConfigError as e:
        raise pulumi.RunError(f"invalid Pulumi config: {e}") from None


build(config_from_pulumi())
