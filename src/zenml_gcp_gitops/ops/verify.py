"""What a backup remembers about the servers, and the check that a restore brought it back.

`snapshot` runs at backup time: the ZenML server's version, the stack, the newest pipeline
run, and MLflow's version, experiments and users. `verify` runs after a restore: the ZenML
server answers, the stack and that run exist, and MLflow lists the experiments (and users).
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from ..errors import ServiceUnavailable, UserError


@dataclass
class Servers:
    """How to reach and log in to both servers (credentials never leave this object)."""

    zenml_url: str
    zenml_credentials: Any  # zenml_api.Credentials
    stack: str
    mlflow_url: str
    mlflow_login: tuple[str, str] = field(repr=False, default=("", ""))
    timeout: float = 300.0


def _mlflow_get(s: Servers, path: str, params: dict[str, Any] | None = None) -> Any:
    url = s.mlflow_url.rstrip("/") + path
    if params:
        url += "?" + urllib.parse.urlencode(params)
    token = base64.b64encode(f"{s.mlflow_login[0]}:{s.mlflow_login[1]}".encode()).decode()
    req = urllib.request.Request(
        url, headers={"Authorization": f"Basic {token}", "Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read().decode()
    except urllib.error.HTTPError as e:
        raise ServiceUnavailable(
            f"MLflow at {s.mlflow_url} answered HTTP {e.code} on {path}"
        ) from None
    except OSError as e:
        raise ServiceUnavailable(
            f"MLflow at {s.mlflow_url} did not answer ({e.__class__.__name__})"
        ) from None
    try:
        return json.loads(body)
    except ValueError:
        return body.strip()


def mlflow_experiments(s: Servers) -> list[str]:
    data = _mlflow_get(s, "/api/2.0/mlflow/experiments/search", {"max_results": 1000})
    return sorted(str(e["name"]) for e in (data or {}).get("experiments", []))


def mlflow_version(s: Servers) -> str | None:
    try:
        v = _mlflow_get(s, "/version")
    except ServiceUnavailable:
        return None
    return str(v) if v else None


def _store(s: Servers) -> Any:
    from ..zenml_api import connect

    return connect(s.zenml_url, s.zenml_credentials, timeout=s.timeout)


def snapshot(s: Servers) -> dict[str, Any]:
    """The facts a restore must bring back (names and IDs only, never a secret)."""
    from zenml.models import PipelineRunFilter, StackFilter

    from ..zenml_api import check_server

    info = check_server(s.zenml_url, s.timeout)
    store = _store(s)
    stacks = store.list_stacks(StackFilter(name=s.stack)).items
    runs = store.list_runs(PipelineRunFilter(sort_by="desc:created", size=1)).items
    return {
        "zenml_version": str(info.get("version")),
        "stack": s.stack if stacks else None,
        "pipeline_run": {"id": str(runs[0].id), "name": runs[0].name} if runs else None,
        "mlflow_version": mlflow_version(s),
        "mlflow_experiments": mlflow_experiments(s),
    }


def verify(s: Servers, expected: dict[str, Any]) -> dict[str, Any]:
    """Check the servers against a snapshot; raise `UserError` listing what is missing."""
    from zenml.models import StackFilter

    store = _store(s)  # waits until the server answers /health
    missing: list[str] = []
    found: dict[str, Any] = {"zenml": True}
    stack = expected.get("stack")
    if stack:
        ok = bool(store.list_stacks(StackFilter(name=stack)).items)
        found["stack"] = ok
        if not ok:
            missing.append(f"ZenML stack {stack}")
    run = expected.get("pipeline_run")
    if run:
        try:
            store.get_run(run["id"])
            found["pipeline_run"] = True
        except KeyError:
            found["pipeline_run"] = False
            missing.append(f"pipeline run {run['name']} ({run['id']})")
    experiments = mlflow_experiments(s)
    found["mlflow_experiments"] = len(experiments)
    lost = sorted(set(expected.get("mlflow_experiments") or []) - set(experiments))
    if lost:
        missing.append(f"MLflow experiments {', '.join(lost)}")
    if missing:
        raise UserError(
            f"the servers are up but do not hold what the backup did: {'; '.join(missing)} missing",
            "check the restore's source; the backup's manifest lists what it held",
        )
    return found
