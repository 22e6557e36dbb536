"""The Application health check (argocd/install/application-health.lua), run in a real Lua.

This is what makes sync waves gate: a child only turns Healthy when it is Synced, not
mid-operation, and its verdict is about its current spec (argo-cd #6708, #8778, #27917).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.conftest import require
from zenml_gcp_gitops.resources import argocd_dir

try:  # lupa (test extra) runs the Lua health check
    import lupa
except ImportError:  # pragma: no cover - the test extra brings it
    lupa = None


@pytest.fixture(autouse=True)
def _needs_lupa() -> None:
    require(None if lupa is not None else "lupa (pip install -e '.[test]')")


SOURCE = {
    "repoURL": "https://charts.jetstack.io",
    "chart": "cert-manager",
    "targetRevision": "v1.19.1",
}
DEST = {"server": "https://kubernetes.default.svc", "namespace": "cert-manager"}


def _lua_value(rt: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return rt.table_from({k: _lua_value(rt, v) for k, v in value.items()})
    if isinstance(value, list):
        return rt.table_from([_lua_value(rt, v) for v in value])
    return value


def health(app: dict[str, Any]) -> tuple[str, str]:
    rt = lupa.LuaRuntime(unpack_returned_tuples=True)
    script = (argocd_dir() / "install" / "application-health.lua").read_text()
    fn = rt.eval(f"function(obj)\n{script}\nend")
    hs = fn(_lua_value(rt, app))
    return str(hs["status"]), str(hs["message"] or "")


def app(
    health_status: str | None = "Healthy", sync: str | None = "Synced", **status: Any
) -> dict[str, Any]:
    st: dict[str, Any] = {
        "sync": {
            "status": sync,
            "comparedTo": {"source": copy.deepcopy(SOURCE), "destination": DEST},
        }
    }
    if health_status is not None:
        st["health"] = {"status": health_status}
    st.update(status)
    return {"spec": {"source": copy.deepcopy(SOURCE), "destination": DEST}, "status": st}


def test_healthy_and_synced_is_healthy() -> None:
    assert health(app())[0] == "Healthy"


def test_no_status_yet_is_progressing() -> None:
    assert health({"spec": {"source": SOURCE}})[0] == "Progressing"


@pytest.mark.parametrize("verdict", ["Missing", "Unknown"])
def test_missing_child_does_not_count_as_healthy(verdict: str) -> None:
    assert health(app(verdict))[0] == "Progressing"  # argo-cd #6708


def test_healthy_but_out_of_sync_holds_the_wave() -> None:
    status, message = health(app(sync="OutOfSync"))
    assert status == "Progressing" and "OutOfSync" in message


def test_stale_verdict_for_an_older_spec_holds_the_wave() -> None:
    a = app()
    a["spec"]["source"]["targetRevision"] = "v1.20.0"  # updated; controller has not compared yet
    status, message = health(a)
    assert status == "Progressing" and "stale" in message


def test_empty_fields_omitted_by_argo_are_not_a_difference() -> None:
    a = app()
    a["spec"]["source"]["path"] = ""
    a["status"]["sync"]["comparedTo"]["source"]["helm"] = {}
    assert health(a)[0] == "Healthy"


def test_running_operation_holds_the_wave() -> None:
    assert health(app(operationState={"phase": "Running"}))[0] == "Progressing"


def test_failed_sync_is_degraded_with_its_message() -> None:
    status, message = health(
        app(
            "Progressing",
            operationState={"phase": "Failed", "message": "one or more objects failed"},
        )
    )
    assert status == "Degraded" and "failed" in message


def test_degraded_child_stays_degraded() -> None:
    assert health(app("Degraded"))[0] == "Degraded"
