"""The paused cost beside the running one, line by line, on the default shape's offline plan."""

from __future__ import annotations

from zenml_gcp_gitops.config import build_config
from zenml_gcp_gitops.estimate.paused import TARGET, add_paused
from zenml_gcp_gitops.plan import offline_plan


def test_default_shape_pauses_at_least_70_percent_cheaper_line_by_line() -> None:
    cost = offline_plan(build_config(None, {"project": "my-project-1", "region": "us-central1"}))[
        "cost"
    ]
    lines = {ln["item"]: ln for ln in cost["lines"]}
    assert lines["GKE Autopilot pods"]["monthly"] > 0
    assert lines["GKE Autopilot pods"]["paused_monthly"] == 0
    assert lines["Cloud SQL instance"]["paused_monthly"] == 0
    # what keeps the data and the URLs keeps billing, and says why
    for kept in ("cluster management fee", "load balancer", "static IP", "Cloud SQL storage"):
        assert lines[kept]["paused_monthly"] == lines[kept]["monthly"] > 0
        assert lines[kept]["paused_why"]
    paused = sum(ln["paused_monthly"] or 0 for ln in cost["lines"])
    assert round(paused, 2) == cost["paused_total"]
    assert cost["paused_total"] <= (1 - TARGET) * cost["monthly_total"]
    assert cost["paused_note"].startswith("paused costs")


def test_a_saving_short_of_the_target_names_the_lines_that_keep_it_higher() -> None:
    cost = {
        "currency": "USD",
        "monthly_total": 110.0,
        "lines": [
            {"item": "GKE Autopilot pods", "monthly": 10.0},
            {"item": "cluster management fee", "monthly": 73.0},
            {"item": "load balancer", "monthly": 18.25},
            {"item": "Cloud SQL instance", "monthly": 8.75},
        ],
    }
    add_paused(cost)
    note = cost["paused_note"]
    assert cost["paused_total"] == 91.25 and "short of 70%" in note
    assert note.index("cluster management fee (73.00 USD)") < note.index("load balancer")
    assert "GKE Autopilot pods" not in note and "Cloud SQL instance" not in note
