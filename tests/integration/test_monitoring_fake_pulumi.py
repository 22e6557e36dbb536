"""Monitoring through the real program and the fake Pulumi engine: the deployed uptime checks'
IDs reach `status`, which asks Cloud Monitoring for each check's newest result with a request
that Google's discovery document accepts, and says who the alerts notify."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.fakes import discovery
from tests.fakes.cloud_dns import FakeCloudDns
from tests.fakes.google_clients import FakeGcp
from tests.support.fake_engine import fake_cfg, fake_engine
from zenml_gcp_gitops.config import DeploymentConfig
from zenml_gcp_gitops.engine import Engine


class Response:
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status_code, self._body, self.text = status, body, json.dumps(body)

    def json(self) -> dict[str, Any]:
        return self._body


class MonitoringApi:
    """Cloud Monitoring's timeSeries.list: refuses what the API refuses (an unknown method,
    path or parameter, per the discovery document), answers from the points it holds."""

    def __init__(self, points: dict[str, list[bool]]) -> None:
        self.points = points  # check ID -> one newest result per probe region
        self.asked: list[str] = []
        method = discovery.document("monitoring", "v3")["resources"]["projects"]["resources"][
            "timeSeries"
        ]["methods"]["list"]
        self.method = method

    def request(self, verb: str, url: str, params: dict[str, str], timeout: float) -> Response:
        parts = urlsplit(url)
        assert (verb, parts.netloc) == (self.method["httpMethod"], "monitoring.googleapis.com")
        assert parts.path.startswith("/v3/projects/") and parts.path.endswith("/timeSeries")
        unknown = set(params) - set(self.method["parameters"])
        if unknown or "filter" not in params or "interval.endTime" not in params:
            return Response(400, {"error": {"code": 400, "message": f"bad request {unknown}"}})
        check = params["filter"].split('metric.label.check_id="')[1].rstrip('"')
        self.asked.append(check)
        end = params["interval.endTime"]
        series = [
            {
                "metric": {"labels": {"check_id": check, "checker_location": f"region-{i}"}},
                "points": [{"interval": {"endTime": end}, "value": {"boolValue": ok}}],
            }
            for i, ok in enumerate(self.points.get(check, []))
        ]
        return Response(200, {"timeSeries": series} if series else {})


_cfg = fake_cfg


def _engine(cfg: DeploymentConfig, root: Path, **opts: Any) -> Engine:
    dns = FakeCloudDns(FakeGcp(project=cfg.project))
    return fake_engine(cfg, root, dns.api(cfg), yes=True, **opts)


def test_status_reports_each_uptime_check_and_who_is_notified(
    fake_pulumi_env: Path, fake_pulumi_root: Path
) -> None:
    cfg = _cfg(fake_pulumi_env)  # no acme_email, no alert_email: nobody is notified
    summary = _engine(cfg, fake_pulumi_root).deploy(stop_after="infra")
    checks = summary["outputs"]["uptime_checks"]
    assert set(checks) == {"zenml", "mlflow"}

    api = MonitoringApi({checks["zenml"]: [True, True, True], checks["mlflow"]: [True, False]})
    data = _engine(cfg, fake_pulumi_root, monitoring_session=api).status(live=True)
    mon = data["monitoring"]
    assert mon["notified"] is None
    assert mon["dashboard"].startswith("https://console.cloud.google.com/monitoring/")
    assert sorted(api.asked) == sorted(checks.values())
    assert mon["uptime"]["zenml"]["state"] == "up"
    assert (mon["uptime"]["zenml"]["passed"], mon["uptime"]["zenml"]["probes"]) == (3, 3)
    assert mon["uptime"]["mlflow"]["state"] == "degraded"

    # a fresh check has no points yet: that is not "down"
    fresh = MonitoringApi({})
    data = _engine(cfg, fake_pulumi_root, monitoring_session=fresh).status(live=True)
    assert {u["state"] for u in data["monitoring"]["uptime"].values()} == {"no result yet"}

    # offline status never calls the API
    idle = MonitoringApi({})
    data = _engine(cfg, fake_pulumi_root, monitoring_session=idle).status(live=False)
    assert "uptime" not in data["monitoring"] and idle.asked == []


@pytest.mark.parametrize("email", ["oncall@example.com"])
def test_alert_email_is_recorded_and_monitoring_off_leaves_status_without_it(
    fake_pulumi_env: Path, fake_pulumi_root: Path, email: str
) -> None:
    cfg = _cfg(fake_pulumi_env, alert_email=email)
    summary = _engine(cfg, fake_pulumi_root).deploy(stop_after="infra")
    assert summary["outputs"]["alerts_notify"] == email
    data = _engine(cfg, fake_pulumi_root).status(live=False)
    assert data["monitoring"]["notified"] == email

    off = _cfg(fake_pulumi_env, name="quiet", monitoring=False)
    summary = _engine(off, fake_pulumi_root).deploy(stop_after="infra")
    assert summary["outputs"].get("uptime_checks") is None
    assert "monitoring" not in _engine(off, fake_pulumi_root).status(live=False)
