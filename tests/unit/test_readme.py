"""The README's config reference must list every config field, and only real ones."""

from __future__ import annotations

import re
from pathlib import Path

from zenml_gcp_gitops.config import DeploymentConfig, Versions

README = Path(__file__).resolve().parents[2] / "README.md"


def _config_table_fields() -> set[str]:
    text = README.read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M))


def test_readme_config_table_matches_the_config_object() -> None:
    documented = _config_table_fields()
    assert documented == set(DeploymentConfig.model_fields)


def test_readme_names_every_pinned_version() -> None:
    section = README.read_text().split("## Configuration", 1)[1]
    for field in Versions.model_fields:
        assert f"`{field}`" in section, field
