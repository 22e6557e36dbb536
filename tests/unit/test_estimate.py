"""The plan's monthly cost and first-deploy duration estimates."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from zenml_gcp_gitops.cli import cli
from zenml_gcp_gitops.config import DeploymentConfig, build_config
from zenml_gcp_gitops.engine import Engine
from zenml_gcp_gitops.estimate import durations as dur
from zenml_gcp_gitops.estimate.cost import sql_tier_shape
from zenml_gcp_gitops.estimate.pods import billed_pod, chart_workloads, gib
from zenml_gcp_gitops.estimate.prices import PRICE_KEYS, load_prices, snapshot_prices
from zenml_gcp_gitops.infra.events import EventTracker
from zenml_gcp_gitops.plan import offline_plan
from zenml_gcp_gitops.state.record import DeploymentRecord, FileRecordStore, PhaseRecord

H = 730  # hours in the month the estimate uses


def cfg_of(region: str = "us-central1", **kw: Any) -> DeploymentConfig:
    return build_config(None, {"project": "my-project-1", "region": region, **kw})


_PLANS: dict[str, dict[str, Any]] = {}


def _plan(region: str = "us-central1", **kw: Any) -> dict[str, Any]:
    """The offline plan of a config, run once per config in this module (a private copy)."""
    key = json.dumps([region, kw], sort_keys=True)
    if key not in _PLANS:
        _PLANS[key] = offline_plan(cfg_of(region, **kw))
    return copy.deepcopy(_PLANS[key])


def _line(cost: dict[str, Any], item: str) -> dict[str, Any]:
    return next(line for line in cost["lines"] if line["item"] == item)


# --------------------------------------------------------------------------- cost


def test_default_plan_cost_matches_a_hand_computation() -> None:
    """Every number below is worked out here, from the list prices of us-central1 and what
    the default deployment runs, independently of the estimator's code."""
    price = {  # USD list prices, us-central1 (the shipped snapshot must carry the same)
        "vcpu_h": 0.0445,
        "mem_gib_h": 0.0049225,
        "eph_gib_h": 0.0000548,
        "cluster_h": 0.10,
        "sql_vcpu_h": 0.0413,
        "sql_mem_gib_h": 0.0070,
        "sql_ssd_gib_mo": 0.17,
        "sql_backup_gib_mo": 0.08,
        "nat_vm_h": 0.0014,
        "nat_gib": 0.045,
        "rule_h": 0.025,
        "ip_h": 0.005,
        "gcs_gib_mo": 0.020,
        "ar_gib_mo": 0.10,
        "secret_version_mo": 0.06,
        "key_version_mo": 0.06,
        "condition_mo": 1.50,
        "million_series": 0.35,
    }
    # Pods: Argo CD's install manifest has 7 workloads and sets no requests, so Autopilot
    # gives each 0.5 vCPU, 2 GiB, 1 GiB ephemeral. Our values size External Secrets' 3
    # (controller, webhook, cert controller) and cert-manager's 3 (controller, webhook,
    # cainjector) at 250m / 512Mi, ZenML's 1 and MLflow's 1 at 500m / 2Gi; none of them asks
    # for ephemeral storage, so each gets Autopilot's 1 GiB.
    argocd, operators, servers = 7, 3 + 3, 1 + 1
    pods = argocd + operators + servers
    vcpu = (argocd + servers) * 0.5 + operators * 0.25
    mem = (argocd + servers) * 2.0 + operators * 0.5
    eph = pods * 1.0
    gke = (vcpu * price["vcpu_h"] + mem * price["mem_gib_h"] + eph * price["eph_gib_h"]) * H
    fee = price["cluster_h"] * H
    sql = (1 * price["sql_vcpu_h"] + 3840 / 1024 * price["sql_mem_gib_h"]) * H  # db-custom-1-3840
    disk = 10 * price["sql_ssd_gib_mo"]  # Cloud SQL's default 10 GB
    # Backups are incremental: the oldest holds the 10 GiB of data, each later day adds
    # 0.1 GiB. 30 automated ones (backup_retention_days) span 29 days of changes; weekly
    # on-demand backups, which `backup` deletes after the same 30 days, reach back 30 days.
    backup_gib = 10 + 0.1 * 30
    backups = backup_gib * price["sql_backup_gib_mo"]
    exports = 4 * 30 / 30.4 * 10 * price["gcs_gib_mo"]  # weekly exports live 30 days
    nat = 3 * price["nat_vm_h"] * H + 20 * price["nat_gib"]  # 3 nodes, 20 GiB (defaults)
    lb = price["rule_h"] * H  # the Gateway's forwarding rule
    ip = price["ip_h"] * H
    gcs = 50 * price["gcs_gib_mo"]
    ar = 10 * price["ar_gib_mo"]
    secrets = 8 * price["secret_version_mo"]  # 7 generated + the CI key's secret
    kms = 2 * price["key_version_mo"]  # the buckets' key + the state key
    # 10 GiB workload logs + 1.05M audit entries x 1.5 KiB + 10 GiB flow logs x 0.5
    # sampling = 16.5 GiB, inside the 50 GiB free allotment
    logging = 0.0
    # 8 alerting conditions (a down policy per server, the two certificates, disk, CPU and
    # memory, the failed backup); the 7 metric ones return one series every 30 s. The two
    # uptime checks run 0.44 M times a month, inside the 1 M free executions.
    alerting = 8 * price["condition_mo"] + 7 * H * 3600 / 30 / 1e6 * price["million_series"]
    expected = (
        (gke + fee + sql + disk + backups + exports + nat + lb + ip + gcs + ar + secrets + kms)
        + logging
        + alerting
    )

    cost = _plan()["cost"]
    assert cost["currency"] == "USD" and cost["source"] == "snapshot" and cost["as_of"]
    assert cost["complete"] is True and cost["partial"] is False
    assert cost["monthly_total"] == pytest.approx(expected, abs=0.02)
    assert _line(cost, "Cloud SQL backups")["monthly"] == pytest.approx(backups, abs=0.01)
    assert _line(cost, "GKE Autopilot pods")["monthly"] == pytest.approx(gke, abs=0.01)
    assert _line(cost, "Cloud SQL instance")["monthly"] == pytest.approx(sql, abs=0.01)
    assert _line(cost, "Cloud NAT")["monthly"] == pytest.approx(nat, abs=0.01)
    assert _line(cost, "Secret Manager")["quantity"] == "8 versions"
    assert sum(p["replicas"] for p in cost["pods"]) == pods
    assert sum(line["monthly"] for line in cost["lines"]) == pytest.approx(
        cost["monthly_total"], abs=0.02
    )


def test_cost_contract_in_the_plan_json() -> None:
    res = CliRunner().invoke(
        cli,
        ["plan", "--offline", "--project", "my-project-1", "--region", "us-central1", "-o", "json"],
    )
    assert res.exit_code == 0, res.output
    cost = json.loads(res.output)["cost"]
    for key in ("currency", "monthly_total", "lines", "source", "as_of", "assumptions"):
        assert key in cost
    items = [line["item"] for line in cost["lines"]]
    assert items == [
        "GKE Autopilot pods",
        "cluster management fee",
        "Cloud SQL instance",
        "Cloud SQL storage",
        "Cloud SQL backups",
        "Cloud NAT",
        "load balancer",
        "static IP",
        "GCS",
        "GCS: SQL exports",
        "Artifact Registry",
        "Secret Manager",
        "KMS",
        "logging: workload and platform logs",
        "logging: Data Access audit logs",
        "logging: VPC flow logs",
        "Cloud Monitoring: alerting",
        "Cloud Monitoring: uptime checks",
    ]
    for line in cost["lines"]:
        for fig in line["figures"]:
            assert fig["source"] and fig["as_of"] and fig["unit"].startswith("USD/")
    settings = {a["setting"] for a in cost["assumptions"]}
    assert {"estimate.gcs_gb", "estimate.nat_gb", "estimate.logging_gb"} <= settings


def test_ha_costs_more() -> None:
    """With REGIONAL Cloud SQL (what high availability drives) the SQL lines double."""
    zonal, regional = _plan()["cost"], _plan(sql_availability="REGIONAL")["cost"]
    assert regional["monthly_total"] > zonal["monthly_total"]
    for item in ("Cloud SQL instance", "Cloud SQL storage"):
        assert _line(regional, item)["monthly"] == pytest.approx(
            2 * _line(zonal, item)["monthly"], abs=0.01
        )
    assert "REGIONAL (HA)" in _line(regional, "Cloud SQL instance")["quantity"]


def test_ha_flag_costs_more_and_prices_its_replicas() -> None:
    """`ha: true` drives a REGIONAL instance and more server replicas; both are priced."""
    base, ha = _plan()["cost"], _plan(ha=True)["cost"]
    assert ha["monthly_total"] > base["monthly_total"]
    assert "REGIONAL (HA)" in _line(ha, "Cloud SQL instance")["quantity"]
    replicas = {p["workload"]: p["replicas"] for p in ha["pods"]}
    assert replicas["zenml-server"] == 2
    assert _line(ha, "GKE Autopilot pods")["monthly"] > _line(base, "GKE Autopilot pods")["monthly"]


def test_assumption_settings_change_the_estimate() -> None:
    base = _plan()["cost"]
    more = _plan(estimate={"gcs_gb": 1050, "logging_gb": 60})["cost"]
    assert _line(more, "GCS")["monthly"] == pytest.approx(21.0, abs=0.01)  # 1050 GiB x 0.02
    # 60 + 1.5 (audit) + 5 (flow) GiB = 66.5 GiB; 16.5 GiB beyond the free 50 at $0.50
    logs = sum(ln["monthly"] for ln in more["lines"] if ln["item"].startswith("logging"))
    assert logs == pytest.approx(16.5 * 0.5, abs=0.02)
    assert more["monthly_total"] == pytest.approx(base["monthly_total"] + 20 + 8.25, abs=0.03)


def _logs(cost: dict[str, Any]) -> float:
    return sum(ln["monthly"] for ln in cost["lines"] if ln["item"].startswith("logging"))


def test_audit_and_flow_logs_come_from_the_plans_settings() -> None:
    """Data Access audit logs and VPC flow logs are billed as Cloud Logging ingestion: their
    volume follows `data_access_logs` and `flow_log_sampling`, past the free 50 GiB."""
    heavy = {"logging_gb": 50, "storage_operations": 20_000_000, "flow_logs_gb": 40}
    on = _plan(estimate=heavy)["cost"]
    audit = _line(on, "logging: Data Access audit logs")
    # (20M + 50k entries) x 1.5 KiB = 28.68 GiB
    assert audit["quantity"] == "28.68 GiB"
    flow = _line(on, "logging: VPC flow logs")
    assert flow["quantity"] == "20.00 GiB"  # 40 GiB at full sampling x 0.5
    assert _logs(on) == pytest.approx((50 + 28.68 + 20 - 50) * 0.5, abs=0.02)
    assert any(a["setting"].startswith("estimate.storage_operations") for a in on["assumptions"])
    off = _plan(estimate=heavy, data_access_logs=False)["cost"]
    assert _line(off, "logging: Data Access audit logs")["quantity"] == "0.00 GiB"
    assert {
        "assumption": "Data Access audit logs are off",
        "value": "0 GiB",
        "setting": "data_access_logs",
    } in off["assumptions"]
    assert on["monthly_total"] - off["monthly_total"] == pytest.approx(28.68 * 0.5, abs=0.02)
    full = _plan(estimate=heavy, flow_log_sampling=1.0)["cost"]
    assert _line(full, "logging: VPC flow logs")["quantity"] == "40.00 GiB"
    assert full["monthly_total"] - on["monthly_total"] == pytest.approx(20 * 0.5, abs=0.02)
    none = _plan(estimate=heavy, flow_log_sampling=0.0)["cost"]
    assert _line(none, "logging: VPC flow logs")["monthly"] == 0.0


def test_backups_follow_the_retention_and_on_demand_backups_expire_with_it() -> None:
    base = _plan()["cost"]
    short = _plan(backup_retention_days=7, estimate={"on_demand_backup_months": 0})["cost"]
    # 7 automated backups: 10 GiB + 6 days x 0.1 GiB; no on-demand ones kept
    assert (
        _line(short, "Cloud SQL backups")["quantity"] == "10.6 GiB (10.6 automated, 0.0 on-demand)"
    )
    assert _line(short, "Cloud SQL backups")["monthly"] == pytest.approx(10.6 * 0.08, abs=0.01)
    assert (
        _line(base, "Cloud SQL backups")["monthly"] > _line(short, "Cloud SQL backups")["monthly"]
    )
    exports = _line(short, "GCS: SQL exports")
    assert exports["monthly"] == pytest.approx(4 * 7 / 30.4 * 10 * 0.02, abs=0.01)
    settings = {a["setting"] for a in base["assumptions"]}
    assert "backup_retention_days" in settings
    assert "estimate.backups_per_month, estimate.on_demand_backup_months" in settings
    # `backup` expires its own runs past the retention; runs kept by hand pile up
    piled = _plan(estimate={"on_demand_backup_months": 12})["cost"]
    assert _line(piled, "Cloud SQL backups")["monthly"] == pytest.approx(
        (10 + 0.1 * 12 * 30.4) * 0.08, abs=0.01
    )
    assert _line(base, "Cloud SQL backups")["monthly"] == pytest.approx(13.0 * 0.08, abs=0.01)
    fixed = _plan(estimate={"sql_backup_gb": 25})["cost"]
    assert _line(fixed, "Cloud SQL backups")["monthly"] == pytest.approx(2.0, abs=0.01)


def test_monitoring_line_counts_what_the_stack_creates() -> None:
    from zenml_gcp_gitops.estimate.cost import MONITORING_TYPES

    plan = offline_plan(cfg_of())
    conditions = sum(
        len(r["inputs"]["conditions"])
        for r in plan["resources"]
        if r["type"] == "gcp:monitoring/alertPolicy:AlertPolicy"
    )
    alerting = _line(plan["cost"], "Cloud Monitoring: alerting")
    assert alerting["quantity"].startswith(f"{conditions} conditions")
    # $1.50 per condition and month plus the series the metric conditions return
    assert alerting["monthly"] > conditions * 1.5
    assert {f["key"] for f in alerting["figures"]} == {
        "monitoring_condition_month",
        "monitoring_million_series",
    }
    uptime = _line(plan["cost"], "Cloud Monitoring: uptime checks")
    assert uptime["monthly"] == 0.0 and "free" in uptime["note"]

    off = offline_plan(cfg_of(monitoring=False))
    line = _line(off["cost"], "Cloud Monitoring")
    assert line["quantity"] == "none created" and line["monthly"] == 0.0
    assert not [r for r in off["resources"] if r["type"] in MONITORING_TYPES]
    assert off["cost"]["monthly_total"] < plan["cost"]["monthly_total"]


def test_one_missing_price_leaves_its_line_unpriced() -> None:
    book = snapshot_prices("us-central1")
    del book.prices["static_ip_hour"]
    cfg = cfg_of()
    plan = offline_plan(cfg, book)
    cost = plan["cost"]
    ip = _line(cost, "static IP")
    assert ip["monthly"] is None and "static_ip_hour" in ip["note"]
    assert cost["complete"] is False
    full = offline_plan(cfg)["cost"]
    assert cost["monthly_total"] == pytest.approx(full["monthly_total"] - 3.65, abs=0.01)


def test_unknown_sql_tier_is_not_guessed() -> None:
    assert sql_tier_shape("db-custom-2-7680") == (2.0, 7.5)
    assert sql_tier_shape("db-n1-standard-4") == (4.0, 15.0)
    assert sql_tier_shape("db-f1-micro") is None
    line = _line(_plan(sql_tier="db-f1-micro")["cost"], "Cloud SQL instance")
    assert line["monthly"] is None and "db-f1-micro" in line["note"]


def test_snapshot_covers_every_price_key_for_its_regions() -> None:
    for region in ("us-central1", "us-east1", "us-west1"):
        book = snapshot_prices(region)
        assert set(book.prices) == set(PRICE_KEYS), region


# --------------------------------------------------------------------------- pods


def test_autopilot_rules() -> None:
    # no requests: the defaults, per container
    assert billed_pod([None, {}], []) == (1.0, 4.0, 2.0)
    # below the pod minimum, then lifted into the 1-6.5 GiB per vCPU range
    cpu, mem, eph = billed_pod([{"cpu": "100m", "memory": "90Mi", "ephemeral-storage": "1Gi"}], [])
    assert (cpu, mem, eph) == (0.25, 0.5, 1.0)
    cpu, mem, _ = billed_pod([{"cpu": "1", "memory": "512Mi", "ephemeral-storage": "1Gi"}], [])
    assert (cpu, mem) == (1.0, 1.0)
    cpu, mem, _ = billed_pod([{"cpu": "250m", "memory": "13Gi", "ephemeral-storage": "1Gi"}], [])
    assert (cpu, mem) == (2.0, 13.0)
    # an init container larger than the app containers sets the pod's request
    big = {"cpu": "2", "memory": "4Gi", "ephemeral-storage": "1Gi"}
    small = {"cpu": "500m", "memory": "1Gi", "ephemeral-storage": "1Gi"}
    assert billed_pod([small], [big])[:2] == (2.0, 4.0)
    assert gib("1536Mi") == 1.5 and gib("1G") == pytest.approx(0.931, abs=0.001)


def test_replicas_and_resources_from_our_values() -> None:
    rows = chart_workloads("mlflow", "1.11.5", "mlflow", {"replicaCount": 2})
    assert rows is not None
    (mlflow,) = [r for r in rows if r["name"] == "mlflow"]
    assert mlflow["replicas"] == 2
    rows = chart_workloads(
        "zenml",
        "0.98.0",
        "zenml-server",
        {"zenml": {"replicaCount": 3}, "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}},
    )
    assert rows is not None
    (server,) = rows  # the migration Job is a one-off hook, not billed monthly
    assert server["replicas"] == 3 and server["containers"][0]["requests"]["cpu"] == "1"
    assert chart_workloads("mlflow", "9.9.9", "mlflow", {}) is None


def test_nginx_ingress_adds_its_controller_and_a_chart_without_a_table_is_named() -> None:
    nginx = _plan(ingress="nginx")["cost"]
    apps = {p["app"] for p in nginx["pods"]}
    assert "ingress_nginx" in apps
    cost = _plan(versions={"mlflow_chart": "9.9.9"})["cost"]
    assert "no request table for chart mlflow 9.9.9" in _line(cost, "GKE Autopilot pods")["note"]


# --------------------------------------------------------------------------- live prices


def test_live_pricing_without_credentials_falls_back_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import google.auth
    from google.auth import exceptions

    def no_adc(**_: Any) -> Any:
        raise exceptions.DefaultCredentialsError("none")

    monkeypatch.setattr(google.auth, "default", no_adc)
    book = load_prices("us-central1", "live")
    assert book.source.startswith("snapshot (live pricing unavailable")
    assert book.prices == snapshot_prices("us-central1").prices
    # in words, not a class name; and no advice to try what was just tried
    assert "DefaultCredentialsError" not in book.source
    assert "gcloud auth application-default login" in book.source
    other = load_prices("europe-west4", "live")
    assert other.source.startswith("snapshot (live pricing unavailable")
    assert "--pricing live" not in other.source + (other.unavailable or "")


# --------------------------------------------------------------------------- duration


def _res(
    urn: str, type_: str, deps: tuple[str, ...] = (), parent: str | None = None
) -> dict[str, Any]:
    return {"urn": urn, "type": type_, "name": urn, "depends_on": list(deps), "parent": parent}


def test_critical_path_follows_dependencies_through_components() -> None:
    comp = "zenml-gcp-gitops:infra:Network"
    resources = [
        _res("apis", "gcp:projects/service:Service"),
        _res("net", comp, ["apis"]),
        _res("vpc", "gcp:compute/network:Network", ["apis"], parent="net"),
        _res("sql", "gcp:sql/databaseInstance:DatabaseInstance", ["net"]),  # waits for vpc
        _res("gke", "gcp:container/cluster:Cluster", ["vpc"]),
        _res("bucket", "gcp:storage/bucket:Bucket"),
    ]
    out = dur.infra_critical_path(resources)
    assert [s["urn"] for s in out["critical_path"]] == ["apis", "vpc", "sql"]
    t = dur.CREATE_TIMES
    assert out["max_s"] == (
        t["gcp:projects/service:Service"].max_s
        + t["gcp:compute/network:Network"].max_s
        + t["gcp:sql/databaseInstance:DatabaseInstance"].max_s
    )
    assert out["min_s"] <= out["max_s"]


def test_plan_duration_has_the_critical_path_waves_and_a_range() -> None:
    d = _plan()["duration"]
    assert "gcp:container/cluster:Cluster" in [s["type"] for s in d["critical_path"]]
    assert all(s["source"] for s in d["critical_path"])
    # the instance is on the database's line, which runs beside the critical path
    sql = [s for s in d["schedule"] if s["type"] == dur._SQL]
    assert [s["line"] for s in sql] == ["database"] and sql[0]["source"]
    assert d["schedule"][-1]["end_s"] == d["first_deploy"]["max_s"]
    assert [w["wave"] for w in d["sync_waves"]] == [0, 1, 2]
    # the phases overlap: together they last longer than the deploy
    assert d["first_deploy"]["min_s"] < sum(p["min_s"] for p in d["phases"])
    assert d["first_deploy"]["max_s"] < sum(p["max_s"] for p in d["phases"])
    assert [p["phase"] for p in d["phases"]] == ["preflight", "infra", "gitops", "register", "ci"]
    with_dns = _plan(domain="ml.example.com", dns_zone="example-com")["duration"]
    gitops = {p["phase"]: p for p in with_dns["phases"]}["gitops"]
    assert gitops["max_s"] == {p["phase"]: p for p in d["phases"]}["gitops"]["max_s"] + 600


def _sql_step(d: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in d["schedule"] if s["type"] == dur._SQL)


def test_ha_and_cmek_change_the_cloud_sql_time() -> None:
    """A REGIONAL instance (what `ha` drives) and a CMEK one take longer to create; the
    schedule says by how much and why."""
    zonal, regional = _plan()["duration"], _plan(ha=True)["duration"]
    base = dur.CREATE_TIMES[dur._SQL]
    cmek, ha = dur.SQL_SHAPE_EXTRA["CMEK"], dur.SQL_SHAPE_EXTRA["REGIONAL"]
    z, r = _sql_step(zonal), _sql_step(regional)
    assert z["max_s"] == base.max_s + cmek.max_s and "CMEK" in z["source"]  # keys by default
    assert r["max_s"] == base.max_s + cmek.max_s + ha.max_s and "REGIONAL" in r["source"]
    infra = {p["phase"]: p for p in zonal["phases"]}["infra"]
    infra_ha = {p["phase"]: p for p in regional["phases"]}["infra"]
    assert infra_ha["max_s"] - infra["max_s"] == ha.max_s
    plain = dur.typical_of({"type": dur._SQL, "inputs": {"settings": {}}})
    assert plain == base


def test_dns_shape_changes_the_gitops_time() -> None:
    def gitops(**kw: Any) -> dict[str, Any]:
        phases = _plan(domain="ml.example.com", **kw)["duration"]["phases"]
        return {p["phase"]: p for p in phases}["gitops"]

    records = gitops(dns_zone="example-com")
    new_zone = gitops(create_dns_zone=True)
    dns01 = gitops(dns_zone="example-com", acme_challenge="dns01")
    t = dur.PHASE_TIMES
    assert [s["step"] for s in records["dns"]] == ["dns_wait"]
    assert new_zone["max_s"] - records["max_s"] == t["dns_delegation"].max_s - t["dns_wait"].max_s
    assert dns01["max_s"] - records["max_s"] == t["dns01"].max_s
    assert all(s["source"] for s in dns01["dns"])


def test_every_type_the_program_creates_has_a_typical_time() -> None:
    plan = _plan(
        domain="ml.example.com",
        create_dns_zone=True,
        acme_challenge="dns01",
        github_repo="acme/ml",
        connector_auth="service-account",
    )
    types = {r["type"] for r in plan["resources"] if not r["type"].startswith("zenml-gcp-gitops:")}
    assert types - set(dur.CREATE_TIMES) == set()


def _event(kind: str, urn: str, type_: str, op: str = "create") -> Any:
    md = SimpleNamespace(urn=urn, type=type_, op=op)
    blank = {
        "resource_pre_event": None,
        "res_outputs_event": None,
        "diagnostic_event": None,
        "res_op_failed_event": None,
        "summary_event": None,
    }
    blank[kind] = SimpleNamespace(metadata=md)
    return SimpleNamespace(**blank)


def test_engine_events_give_real_durations_per_type() -> None:
    from zenml_gcp_gitops.phases.base import NullReporter

    now = [0.0]
    tracker = EventTracker(NullReporter(), clock=lambda: now[0])
    sql = "gcp:sql/databaseInstance:DatabaseInstance"
    tracker(_event("resource_pre_event", "u1", sql))
    now[0] = 600.0
    tracker(_event("resource_pre_event", "u2", "gcp:storage/bucket:Bucket"))
    now[0] = 603.0
    tracker(_event("res_outputs_event", "u2", "gcp:storage/bucket:Bucket"))
    now[0] = 700.0
    tracker(_event("res_outputs_event", "u1", sql))
    tracker(_event("resource_pre_event", "u3", sql, op="same"))
    tracker(_event("res_outputs_event", "u3", sql, op="same"))  # unchanged: not a creation time
    assert dur.summarize(tracker.durations) == [
        {"type": sql, "count": 1, "min_s": 700.0, "mean_s": 700.0, "max_s": 700.0},
        {
            "type": "gcp:storage/bucket:Bucket",
            "count": 1,
            "min_s": 3.0,
            "mean_s": 3.0,
            "max_s": 3.0,
        },
    ]


@pytest.mark.parametrize(
    ("availability", "sql_verdict"), [("ZONAL", "slower"), ("REGIONAL", "within")]
)
def test_status_compares_recorded_durations_with_the_table(
    tmp_path: Path, availability: str, sql_verdict: str
) -> None:
    """900 s for the instance is past a ZONAL CMEK one (720 + 120 s at most) and within a
    REGIONAL one (720 + 120 + 360 s): the comparison counts the deployment's shape."""
    cfg = cfg_of(sql_availability=availability)
    store = FileRecordStore(tmp_path / "record.json")
    record = DeploymentRecord.new(cfg)
    record.phases["infra"] = PhaseRecord(
        status="succeeded",
        outputs={
            "outputs": {},
            "resource_durations": [
                {"type": "gcp:sql/databaseInstance:DatabaseInstance", "count": 1, "max_s": 900},
                {"type": "gcp:container/cluster:Cluster", "count": 1, "max_s": 420},
                {"type": "gcp:storage/bucket:Bucket", "count": 2, "max_s": 1},
                {"type": "random:index/randomPassword:RandomPassword", "count": 6, "max_s": 0},
            ],
        },
    )
    store.save(record)

    class Infra:
        name = "infra"

    out = Engine(cfg, phases=[Infra()], store=store).status(live=False)  # type: ignore[list-item]
    verdicts = {r["type"].rsplit(":", 1)[-1]: r["verdict"] for r in out["durations"]}
    assert verdicts == {
        "DatabaseInstance": sql_verdict,
        "Cluster": "within",
        "Bucket": "faster",
        "RandomPassword": "within",
    }


def test_deploy_dry_run_prints_the_estimates(monkeypatch: pytest.MonkeyPatch) -> None:
    from zenml_gcp_gitops.cli import deploy as deploy_cli

    class DryEngine:
        def deploy(self, **kw: Any) -> dict[str, Any]:
            assert kw["dry_run"] is True
            return {"deployment": "zenml", "dry_run": True, "record": "x", "preview": {}}

    monkeypatch.setattr(deploy_cli, "_make_engine", lambda c, options=None: DryEngine())
    args = ["deploy", "--dry-run", "--project", "my-project-1", "--region", "us-central1"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "Monthly cost estimate (USD, prices: snapshot" in res.output
    assert "First deploy" in res.output and "critical path" in res.output
    res = CliRunner().invoke(cli, [*args, "-o", "json"])
    doc = json.loads(res.output)
    assert doc["estimate"]["cost"]["monthly_total"] == _plan()["cost"]["monthly_total"]
    assert doc["estimate"]["duration"]["critical_path"]
