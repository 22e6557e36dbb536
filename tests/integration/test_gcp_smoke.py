"""Opt-in smoke tests against real GCP: `pytest -m gcp`.

Needs Application Default Credentials and ZENML_GCP_GITOPS_TEST_PROJECT (a project you may
create things in). The preflight dry run changes nothing. The full round trip (deploy every
phase, then destroy --force --purge-state) also needs ZENML_GCP_GITOPS_TEST_FULL=1: it takes
25-40 minutes and costs a little money.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid

import pytest

from tests.support.typed_options import typed

pytestmark = pytest.mark.gcp

PROJECT = os.environ.get("ZENML_GCP_GITOPS_TEST_PROJECT")
REGION = os.environ.get("ZENML_GCP_GITOPS_TEST_REGION", "europe-west4")


def _have_credentials() -> bool:
    try:
        import google.auth

        google.auth.default()
        return True
    except Exception:  # noqa: BLE001 - any failure to find credentials means: skip
        return False


needs_gcp = pytest.mark.skipif(
    not PROJECT or not _have_credentials(),
    reason="set ZENML_GCP_GITOPS_TEST_PROJECT and Application Default Credentials to run real-GCP tests",
)


@needs_gcp
def test_preflight_dry_run_against_real_gcp() -> None:
    from zenml_gcp_gitops.config import build_config
    from zenml_gcp_gitops.phases.base import PhaseContext
    from zenml_gcp_gitops.phases.preflight import PreflightPhase

    if shutil.which("pulumi") is None:
        pytest.skip("the Pulumi CLI is not on PATH")
    cfg = build_config(None, {"project": PROJECT, "region": REGION, "name": "smoke"})
    out = PreflightPhase().run(PhaseContext(cfg=cfg, **typed({"dry_run": True, "yes": True})))
    assert out["state_bucket"] == f"{PROJECT}-smoke-state"
    assert out["state_bucket_action"] in ("exists", "would create")


@needs_gcp
def test_client_library_calls_against_real_gcp() -> None:
    """Each read-only call of `GcpApi` and `CloudDnsApi`, and the typed errors of absent things."""
    from zenml_gcp_gitops.config import build_config
    from zenml_gcp_gitops.errors import UserError
    from zenml_gcp_gitops.gcp.api import GcpApi
    from zenml_gcp_gitops.gcp.dns import CloudDnsApi, DnsApiDisabled

    assert PROJECT
    api = GcpApi(build_config(None, {"project": PROJECT, "region": REGION, "name": "smoke"}))
    number = api.check_project(PROJECT)
    assert number and number.isdigit()
    api.check_billing(PROJECT)
    assert api.missing_permissions(PROJECT, ("resourcemanager.projects.get",)) == []
    assert api.project_roles_of(PROJECT, "user:nobody@example.invalid") in (set(), None)
    absent = f"absent-{uuid.uuid4().hex[:8]}"
    assert api.retained_wif(PROJECT, absent, "github", undelete=False) == {}
    with contextlib.suppress(DnsApiDisabled):  # a project without Cloud DNS: named as such
        assert CloudDnsApi(api.dns).get_zone(PROJECT, absent) is None
    with pytest.raises(UserError, match="does not exist or your account cannot see it"):
        api.check_project(f"zz-{absent}")


@needs_gcp
@pytest.mark.skipif(
    not os.environ.get("ZENML_GCP_GITOPS_TEST_FULL"),
    reason="set ZENML_GCP_GITOPS_TEST_FULL=1 for the 30-minute round trip",
)
def test_full_deploy_and_destroy_round_trip() -> None:
    from zenml_gcp_gitops.config import build_config
    from zenml_gcp_gitops.engine import Engine

    name = f"smk{uuid.uuid4().hex[:6]}"
    cfg = build_config(None, {"project": PROJECT, "region": REGION, "name": name})
    try:
        summary = Engine(cfg, **typed({"yes": True}, context=False)).deploy()
        assert {p["status"] for p in summary["phases"].values()} == {"succeeded"}
        again = Engine(cfg, **typed({"yes": True}, context=False)).deploy(stop_after="infra")
        assert again["phases"]["infra"]["status"] == "succeeded"
        _backup_and_restore(cfg)
    finally:
        Engine(
            cfg, **typed({"yes": True, "force": True, "purge_state": True}, context=False)
        ).destroy()


def _backup_and_restore(cfg: object) -> None:
    """SQL Admin export, import into re-created databases, and the servers' stop and start
    through Argo CD, on the real services."""
    from zenml_gcp_gitops.ops import restore as rs
    from zenml_gcp_gitops.ops.backup import list_backups, run_backup
    from zenml_gcp_gitops.ops.context import backup_deps, kube_of, servers_of, target_of
    from zenml_gcp_gitops.run_options import RunOptions, Services
    from zenml_gcp_gitops.state.record import record_store

    record = record_store(cfg).load()  # type: ignore[arg-type]
    assert record is not None
    target = target_of(cfg, record)  # type: ignore[arg-type]
    base = backup_deps(cfg, record, RunOptions(), Services(), print)  # type: ignore[arg-type]
    manifest = run_backup(target, base)
    assert manifest["backup_run_id"] and set(manifest["exports"]) == set(manifest["databases"])
    assert manifest["id"] in [m["id"] for m in list_backups(target, base.storage)]
    deps = rs.RestoreDeps(
        sql=base.sql,
        storage=base.storage,
        log=print,
        kube=kube_of(record, Services()),
        verify_servers=servers_of(cfg, record, RunOptions(), Services()),  # type: ignore[arg-type]
    )
    result = rs.run_restore(target, rs.Source("export", manifest["id"]), deps)
    assert result["verified"]["stack"] is True
