"""The latest result of each uptime check, for `status` (Monitoring API v3, timeSeries.list).

One request per check: the last 10 minutes of `check_passed`, one series per probe region.
A check that has not run yet (a fresh deploy) says so instead of "down".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

MONITORING_API = "https://monitoring.googleapis.com/v3"
CHECK_PASSED = "monitoring.googleapis.com/uptime_check/check_passed"
WINDOW = timedelta(minutes=10)


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def query(check_id: str, now: datetime) -> dict[str, str]:
    """The timeSeries.list parameters: every probe region's newest point in the window."""
    return {
        "filter": f'metric.type="{CHECK_PASSED}" AND metric.label.check_id="{check_id}"',
        "interval.startTime": _stamp(now - WINDOW),
        "interval.endTime": _stamp(now),
        "view": "FULL",
    }


def summarize(body: dict[str, Any]) -> dict[str, Any]:
    """{passed, probes, at}: how many regions passed on their newest point, and when."""
    passed = probes = 0
    newest: str | None = None
    for series in body.get("timeSeries", []):
        points = series.get("points") or []
        if not points:
            continue
        point = points[0]  # the API returns points newest first
        probes += 1
        passed += bool(point.get("value", {}).get("boolValue"))
        end = point.get("interval", {}).get("endTime")
        if end and (newest is None or end > newest):
            newest = end
    if probes == 0:
        return {"state": "no result yet", "passed": 0, "probes": 0, "at": None}
    state = "up" if passed == probes else ("down" if passed == 0 else "degraded")
    return {"state": state, "passed": passed, "probes": probes, "at": newest}


def latest(
    session: Any, project: str, checks: dict[str, str], now: datetime | None = None
) -> dict[str, dict[str, Any]]:
    """key -> summary (or {"state": "unknown", "error": ...}) for each uptime check."""
    now = now or datetime.now(UTC)
    out: dict[str, dict[str, Any]] = {}
    for key, check_id in checks.items():
        url = f"{MONITORING_API}/projects/{project}/timeSeries"
        try:
            resp = session.request("GET", url, params=query(check_id, now), timeout=20)
        except Exception as e:  # noqa: BLE001 - status is best effort; the reason is shown
            out[key] = {"state": "unknown", "error": f"{e.__class__.__name__}: {e}"[:200]}
            continue
        if resp.status_code >= 400:
            try:
                message = resp.json().get("error", {}).get("message", "")
            except ValueError:
                message = resp.text[:200]
            out[key] = {"state": "unknown", "error": f"HTTP {resp.status_code}: {message}"[:200]}
            continue
        out[key] = summarize(resp.json())
    return out
