"""Cloud Monitoring in the offline plan: uptime checks, alert policies, channel, dashboard.

The policies' and checks' inputs have the REST shape of Monitoring API v3, and the dashboard
is raw v1 JSON, so each is checked against Google's discovery documents: a misspelt field or
an enum value the API does not know fails here, not at `deploy`.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest

from tests.fakes import discovery
from zenml_gcp_gitops.config import build_config
from zenml_gcp_gitops.plan import MockRun, Registration, _is_secret, run_program

PROJECT, REGION = "acme-ml-prod", "europe-west4"
UPTIME = "gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig"
POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
CHANNEL = "gcp:monitoring/notificationChannel:NotificationChannel"
DASHBOARD = "gcp:monitoring/dashboard:Dashboard"
SERVICE = "gcp:projects/service:Service"


@cache
def _run(key: str) -> MockRun:
    return run_program(
        build_config(None, {"project": PROJECT, "region": REGION, **json.loads(key)})
    )


def run(**overrides: Any) -> MockRun:
    return _run(json.dumps(overrides, sort_keys=True))


def of_type(r: MockRun, token: str) -> list[Registration]:
    return [x for x in r.registrations if x.type == token]


def rest_body(inputs: dict[str, Any]) -> dict[str, Any]:
    """The resource's inputs as the REST body the provider sends (numbers as JSON has them)."""

    def norm(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        if isinstance(v, list):
            return [norm(x) for x in v]
        return v

    return {k: norm(v) for k, v in inputs.items() if k != "project"}


def test_both_servers_have_https_uptime_checks_on_their_public_hosts() -> None:
    r = run()
    checks = {c.inputs["displayName"]: c.inputs for c in of_type(r, UPTIME)}
    assert set(checks) == {"zenml ZenML server", "zenml MLflow server"}
    hosts = {c["monitoredResource"]["labels"]["host"] for c in checks.values()}
    assert hosts == {r.outputs["zenml_host"], r.outputs["mlflow_host"]}
    for c in checks.values():
        assert c["monitoredResource"]["type"] == "uptime_url"
        assert c["monitoredResource"]["labels"]["project_id"] == PROJECT
        http = c["httpCheck"]
        # over TLS with the certificate validated: an expired or wrong certificate fails
        assert (http["useSsl"], http["validateSsl"], http["port"]) == (True, True, 443)
        assert http["path"] == "/health"
        assert len(c["selectedRegions"]) >= 3  # the API's minimum
        assert discovery.check_schema("monitoring", "v3", "UptimeCheckConfig", rest_body(c)) == []
    # the checks' IDs are exported for `status`
    ids = r.outputs["uptime_checks"]
    assert set(ids) == {"zenml", "mlflow"} and all(ids.values())


def test_mlflow_health_path_is_open_without_credentials() -> None:
    """The check sends no credentials: MLflow's auth app must leave the path open."""
    from mlflow.server.auth import is_unprotected_route

    assert is_unprotected_route("/health")


EXPECTED_POLICIES = {
    "zenml: ZenML server down",
    "zenml: MLflow server down",
    "zenml: TLS certificate expires soon",
    "zenml: Cloud SQL disk above 80 %",
    "zenml: Cloud SQL CPU or memory high",
    "zenml: Cloud SQL automated backup failed",
}


def _policies(r: MockRun) -> dict[str, dict[str, Any]]:
    return {p.inputs["displayName"]: p.inputs for p in of_type(r, POLICY)}


def test_every_alert_policy_watches_this_stack_and_says_what_to_do_first() -> None:
    r = run(acme_email="ops@example.com")
    policies = _policies(r)
    assert set(policies) == EXPECTED_POLICIES
    ids = r.outputs["uptime_checks"]
    instance = f"{PROJECT}:zenml-mysql"
    for name, p in policies.items():
        assert discovery.check_schema("monitoring", "v3", "AlertPolicy", rest_body(p)) == [], name
        docs = p["documentation"]
        assert docs["mimeType"] == "text/markdown"
        assert "First:" in docs["content"] and "`" in docs["content"], name
        filters = [
            c.get("conditionThreshold", c.get("conditionMatchedLog", {}))["filter"]
            for c in p["conditions"]
        ]
        if "server down" in name:
            key = "zenml" if "ZenML" in name else "mlflow"
            assert filters == [
                'metric.type="monitoring.googleapis.com/uptime_check/check_passed" AND '
                f'resource.type="uptime_url" AND metric.label.check_id="{ids[key]}"'
            ]
        elif "certificate" in name:
            assert sorted(f.rsplit('"', 2)[-2] for f in filters) == sorted(ids.values())
            assert all("time_until_ssl_cert_expires" in f for f in filters)
        else:
            assert all(f'database_id="{instance}"' in f for f in filters), name
    backup = policies["zenml: Cloud SQL automated backup failed"]
    assert (
        "cloudsql.instances.automatedBackup"
        in backup["conditions"][0]["conditionMatchedLog"]["filter"]
    )
    # the API refuses a log-match policy without a notification rate limit
    assert backup["alertStrategy"]["notificationRateLimit"]["period"]


@pytest.mark.parametrize(
    ("overrides", "notified"),
    [
        (
            {"alert_email": "oncall@example.com", "acme_email": "tls@example.com"},
            "oncall@example.com",
        ),
        ({"acme_email": "tls@example.com"}, "tls@example.com"),
        ({}, None),
    ],
)
def test_alerts_go_to_alert_email_else_acme_email_else_nobody(
    overrides: dict[str, Any], notified: str | None
) -> None:
    r = run(**overrides)
    channels = of_type(r, CHANNEL)
    assert r.outputs.get("alerts_notify") == notified
    if notified is None:
        assert channels == []
        assert all(not p.get("notificationChannels") for p in _policies(r).values())
        assert len(_policies(r)) == len(EXPECTED_POLICIES)  # the policies exist regardless
        return
    (channel,) = channels
    assert channel.inputs["type"] == "email"
    assert channel.inputs["labels"] == {"email_address": notified}
    channel_id = f"projects/{PROJECT}/notificationChannels/"
    for p in _policies(r).values():
        assert len(p["notificationChannels"]) == 1
        assert p["notificationChannels"][0].startswith(channel_id)


def test_dashboard_is_a_valid_monitoring_dashboard_for_this_stack() -> None:
    r = run()
    (dash,) = of_type(r, DASHBOARD)
    body = json.loads(dash.inputs["dashboardJson"])
    assert discovery.check_schema("monitoring", "v1", "Dashboard", body) == []
    text = json.dumps(body)
    assert 'cluster_name=\\"zenml-gke\\"' in text
    assert f'database_id=\\"{PROJECT}:zenml-mysql\\"' in text
    for check_id in r.outputs["uptime_checks"].values():
        assert check_id in text
    titles = [t["widget"]["title"] for t in body["mosaicLayout"]["tiles"]]
    assert any("CPU" in t for t in titles) and any("connections" in t for t in titles)
    # tiles never overlap and fit the grid
    cells: set[tuple[int, int]] = set()
    for t in body["mosaicLayout"]["tiles"]:
        assert t["xPos"] + t["width"] <= body["mosaicLayout"]["columns"]
        area = {
            (x, y)
            for x in range(t["xPos"], t["xPos"] + t["width"])
            for y in range(t["yPos"], t["yPos"] + t["height"])
        }
        assert not cells & area
        cells |= area
    assert r.outputs["dashboard_url"].startswith("https://console.cloud.google.com/monitoring/")


def test_the_discovery_check_refuses_a_misspelt_field_and_an_unknown_enum() -> None:
    body = json.loads(of_type(run(), DASHBOARD)[0].inputs["dashboardJson"])
    body["mosaicLayout"]["tiles"][0]["xpos"] = 1
    body["mosaicLayout"]["tiles"][1]["widget"]["xyChart"]["dataSets"][0]["plotType"] = "LINES"
    found = discovery.check_schema("monitoring", "v1", "Dashboard", body)
    assert any('unknown field "xpos"' in p for p in found)
    assert any("'LINES' is not one of" in p for p in found)


def test_monitoring_off_creates_nothing_and_exports_nothing() -> None:
    r = run(monitoring=False, acme_email="ops@example.com")
    assert not [x for x in r.registrations if x.type.startswith("gcp:monitoring/")]
    for key in ("uptime_checks", "dashboard_url", "alerts_notify"):
        assert r.outputs.get(key) is None
    services = {s.inputs["service"] for s in of_type(r, SERVICE)}
    assert "monitoring.googleapis.com" not in services


def test_monitoring_api_is_enabled_before_the_checks() -> None:
    r = run()
    services = {s.inputs["service"]: s for s in of_type(r, SERVICE)}
    assert {"monitoring.googleapis.com", "logging.googleapis.com"} <= set(services)
    monitoring_api = services["monitoring.googleapis.com"].urn
    for reg in [*of_type(r, UPTIME), *of_type(r, POLICY), *of_type(r, DASHBOARD)]:
        assert monitoring_api in reg.depends_on, reg.name
        assert not any(_is_secret(v) for v in reg.inputs.values())


def test_operations_doc_lists_every_alert_policy() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    section = doc.split("## Monitoring and alerts", 1)[1].split("\n## ", 1)[0]
    for name in EXPECTED_POLICIES:
        title = name.removeprefix("zenml: ")
        assert any(
            title in line for line in section.splitlines() if line.strip().startswith("|")
        ), title
