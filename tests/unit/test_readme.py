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


def test_readme_lists_every_supported_region() -> None:
    """The bad-region error sends the user to the README's list: it must be the real one."""
    from zenml_gcp_gitops.config import SUPPORTED_REGIONS

    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    para = section.split("Regions with both GKE Autopilot and Cloud SQL", 1)[1].split("\n\n")[0]
    assert set(re.findall(r"`([a-z0-9-]+)`", para)) == set(SUPPORTED_REGIONS)


def test_readme_quickstart_says_what_it_writes_outside_the_checkout() -> None:
    from zenml_gcp_gitops.config import user_data_dir

    quick = README.read_text().split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    assert "~/.local/share/zenml-gcp-gitops/" in quick and "~/.config/zenml/" in quick
    assert user_data_dir.__doc__ and "ZENML_GCP_GITOPS_HOME" in quick


def test_examples_ci_readme_names_real_commands_and_every_secret() -> None:
    """Every `zenml-gcp-gitops ...` command it shows exists, and its secrets table has as many
    rows as the heading says and as `zenml/github.py` sets."""
    import click

    from zenml_gcp_gitops.cli import cli
    from zenml_gcp_gitops.zenml import github as gh

    text = (README.parent / "examples" / "ci" / "README.md").read_text()
    for cmd in re.findall(r"`zenml-gcp-gitops ([a-z][a-z -]*?)(?: --|`)", text):
        group: click.Command = cli
        for word in cmd.split():
            assert isinstance(group, click.Group), cmd
            assert word in group.commands, f"`zenml-gcp-gitops {cmd}` is not a command"
            group = group.commands[word]
    rows = re.findall(r"^\| `(ZENML_[A-Z_]+)` \|", text, flags=re.M)
    words = {2: "two", 3: "three", 4: "four"}
    assert f"## The {words[len(rows)]} secrets" in text
    assert set(rows) == set(re.findall(r"ZENML_[A-Z_]+", Path(gh.__file__).read_text()))
