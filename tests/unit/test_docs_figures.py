"""Figures quoted in the docs are the code's own output, so they cannot go stale: the cost
and duration example in docs/infra.md is compared with what `plan --offline` prints now.

On a mismatch the message holds the current block; paste it into the doc.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from zenml_gcp_gitops.cli import cli

DOCS = Path(__file__).resolve().parents[2] / "docs"
MARK = "<!-- figures: `plan --offline --project my-proj --region us-central1`, 100 columns;"
ARGS = ["plan", "--offline", "--project", "my-proj", "--region", "us-central1"]


def _doc_block(path: Path) -> str:
    text = path.read_text()
    assert MARK in text, f"{path.name} lost its generated-figures marker"
    after = text.split(MARK, 1)[1].split("```\n", 1)[1]
    return after.split("```", 1)[0]


def _printed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("ZENML_GCP_GITOPS_HOME", str(tmp_path))
    res = CliRunner().invoke(cli, ARGS)
    assert res.exit_code == 0, res.output
    out = res.stdout.split("Monthly cost estimate", 1)[1]
    out = "Monthly cost estimate" + out.split("\nOffline plan:", 1)[0]
    return "\n".join(line.rstrip() for line in out.strip().splitlines()) + "\n"


def test_infra_cost_example_is_what_plan_prints(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    now = _printed(monkeypatch, tmp_path)
    assert "total ≈" in now and "First deploy ≈" in now  # the block is the real section
    # The same words and figures; line wrapping depends on the terminal width rich sees.
    doc = _doc_block(DOCS / "infra.md")
    assert sorted(doc.split()) == sorted(now.split()), f"docs/infra.md is stale; now:\n{now}"
