"""The plan's monthly cost and first-deploy duration estimates."""

from __future__ import annotations

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
from zenml_gcp_gitops.estimate.prices import (
    PRICE_KEYS,
    live_prices,
    load_prices,
    snapshot_prices,
)
from zenml_gcp_gitops.infra.events import EventTracker
from zenml_gcp_gitops.plan import offline_plan
from zenml_gcp_gitops.record import DeploymentRecord, FileRecordStore, PhaseRecord

H = 730  # hours in the month the estimate uses


def cfg_of(region: str = "us-central1", **kw: Any) -> DeploymentConfig:
    return build_config(None, {"project": "my-project-1", "region": region, **kw})


def _plan(region: str = "us-central1", **kw: Any) -> dict[str, Any]:
    return offline_plan(cfg_of(region, **kw))


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
    backups = 10 * price["sql_backup_gib_mo"]
    nat = 3 * price["nat_vm_h"] * H + 20 * price["nat_gib"]  # 3 nodes, 20 GiB (defaults)
    lb = price["rule_h"] * H  # the Gateway's forwarding rule
    ip = price["ip_h"] * H
    gcs = 50 * price["gcs_gib_mo"]
    ar = 10 * price["ar_gib_mo"]
    secrets = 8 * price["secret_version_mo"]  # 7 generated + the CI key's secret
    kms = 2 * price["key_version_mo"]  # the buckets' key + the state key
    logging = 0.0  # 10 GiB is inside the 50 GiB free allotment
    expected = gke + fee + sql + disk + backups + nat + lb + ip + gcs + ar + secrets + kms + logging

    cost = _plan()["cost"]
    assert cost["currency"] == "USD" and cost["source"] == "snapshot" and cost["as_of"]
    assert cost["complete"] is True
    assert cost["monthly_total"] == pytest.approx(expected, abs=0.01)
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
        "Artifact Registry",
        "Secret Manager",
        "KMS",
        "logging",
    ]
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
    assert _line(more, "logging")["monthly"] == pytest.approx(5.0, abs=0.01)  # 10 GiB x 0.50
    assert more["monthly_total"] == pytest.approx(base["monthly_total"] + 20 + 5, abs=0.02)


def test_region_without_a_price_says_so_instead_of_guessing() -> None:
    cost = _plan("europe-west4")["cost"]
    assert cost["monthly_total"] is None and cost["complete"] is False
    assert "no prices for europe-west4" in cost["unavailable"]
    assert "--pricing live" in cost["unavailable"]
    assert all(line["monthly"] is None for line in cost["lines"])
    res = CliRunner().invoke(
        cli, ["plan", "--offline", "--project", "my-project-1", "--region", "europe-west4"]
    )
    assert "no prices for europe-west4" in res.output and "total" not in res.output


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


def _money(price: float) -> dict[str, Any]:
    units = int(price)
    return {"currencyCode": "USD", "units": str(units), "nanos": round((price - units) * 1e9)}


def _sku(
    desc: str, unit: str, price: float, regions: list[str], free_first: bool = False
) -> dict[str, Any]:
    rates = [{"startUsageAmount": 0, "unitPrice": _money(0)}] if free_first else []
    rates.append({"startUsageAmount": 50 if free_first else 0, "unitPrice": _money(price)})
    return {
        "description": desc,
        "category": {"usageType": "OnDemand"},
        "serviceRegions": regions,
        "pricingInfo": [{"pricingExpression": {"usageUnit": unit, "tieredRates": rates}}],
    }


class FakeCatalog:
    """The Cloud Billing Catalog API's `services` and `services/*/skus`, paged."""

    def __init__(self) -> None:
        self.services = [
            {"name": "services/GKE", "displayName": "Kubernetes Engine"},
            {"name": "services/SQL", "displayName": "Cloud SQL"},
            {"name": "services/LOG", "displayName": "Cloud Logging"},
        ]
        self.skus = {
            "services/GKE": [
                _sku(
                    "Autopilot Pod mCPU Requests (europe-west4)", "h", 0.0000492, ["europe-west4"]
                ),
                _sku("Autopilot Pod mCPU Requests (us-central1)", "h", 0.0000445, ["us-central1"]),
                _sku(
                    "Autopilot Pod Memory Requests (europe-west4)",
                    "GiBy.h",
                    0.0054,
                    ["europe-west4"],
                ),
            ],
            "services/SQL": [
                _sku(
                    "Cloud SQL for MySQL: Zonal - vCPU in Netherlands",
                    "h",
                    0.0454,
                    ["europe-west4"],
                ),
                _sku(
                    "Cloud SQL for MySQL: Zonal - RAM in Netherlands",
                    "GiBy.h",
                    0.0077,
                    ["europe-west4"],
                ),
            ],
            "services/LOG": [_sku("Log Storage cost", "GiBy", 0.5, ["global"], free_first=True)],
        }
        self.calls: list[tuple[str, dict[str, str]]] = []

    def request(self, method: str, url: str, params: dict[str, str] | None = None) -> Any:
        params = params or {}
        self.calls.append((url, params))
        if url.endswith("/v1/services"):
            data: dict[str, Any] = {"services": self.services}
        else:
            service = url.split("/v1/")[1].removesuffix("/skus")
            items = self.skus.get(service, [])
            # two pages, to exercise nextPageToken
            if params.get("pageToken") == "2":
                data = {"skus": items[1:]}
            else:
                data = {"skus": items[:1], "nextPageToken": "2" if len(items) > 1 else ""}
        return SimpleNamespace(status_code=200, json=lambda: data)


def test_live_prices_from_the_catalog() -> None:
    catalog = FakeCatalog()
    book = live_prices("europe-west4", catalog.request, as_of="2026-11-28")
    assert book.source.startswith("live") and book.as_of == "2026-11-28"
    assert book.prices["gke_autopilot_vcpu_hour"] == pytest.approx(0.0492)  # mCPU-h x 1000
    assert book.prices["gke_autopilot_memory_gib_hour"] == pytest.approx(0.0054)
    assert book.prices["sql_vcpu_hour"] == pytest.approx(0.0454)
    assert book.prices["logging_gib"] == pytest.approx(0.5)  # past the free tier
    assert "static_ip_hour" not in book.prices  # not in the catalog: stays missing
    assert all(c[1].get("currencyCode", "USD") == "USD" for c in catalog.calls)
    cost = offline_plan(cfg_of("europe-west4"), book)["cost"]
    assert cost["source"].startswith("live") and cost["complete"] is False
    assert _line(cost, "Cloud SQL instance")["monthly"] == pytest.approx(
        (0.0454 + 3.75 * 0.0077) * H, abs=0.01
    )
    assert _line(cost, "static IP")["monthly"] is None


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
    uncovered = load_prices("europe-west4", "live")
    assert uncovered.unavailable and "--pricing live" not in uncovered.unavailable


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
    types = [s["type"] for s in d["critical_path"]]
    assert "gcp:sql/databaseInstance:DatabaseInstance" in types
    assert all(s["source"] for s in d["critical_path"])
    assert [w["wave"] for w in d["sync_waves"]] == [0, 1, 2, 3, 4]
    assert d["first_deploy"]["min_s"] == sum(p["min_s"] for p in d["phases"])
    assert d["first_deploy"]["max_s"] == sum(p["max_s"] for p in d["phases"])
    assert [p["phase"] for p in d["phases"]] == ["preflight", "infra", "gitops", "register", "ci"]
    with_dns = _plan(domain="ml.example.com", dns_zone="example-com")["duration"]
    gitops = {p["phase"]: p for p in with_dns["phases"]}["gitops"]
    assert gitops["max_s"] == {p["phase"]: p for p in d["phases"]}["gitops"]["max_s"] + 600


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
        {"type": sql, "count": 1, "mean_s": 700.0, "max_s": 700.0},
        {"type": "gcp:storage/bucket:Bucket", "count": 1, "mean_s": 3.0, "max_s": 3.0},
    ]


def test_status_compares_recorded_durations_with_the_table(tmp_path: Path) -> None:
    cfg = cfg_of()
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
        "DatabaseInstance": "slower",
        "Cluster": "within",
        "Bucket": "faster",
        "RandomPassword": "within",
    }


def test_snapshot_refresh_keeps_only_fully_priced_regions() -> None:
    from zenml_gcp_gitops.estimate.prices import build_snapshot

    catalog = FakeCatalog()
    snap = build_snapshot(["europe-west4"], catalog.request, "2026-11-28")
    assert snap["as_of"] == "2026-11-28" and snap["regions"] == {}
    assert "static_ip_hour" in snap["skipped"]["europe-west4"]
    book = snapshot_prices("europe-west4", snap)
    assert book.unavailable and "no prices for europe-west4" in book.unavailable


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
    assert "First deploy" in res.output and "infra critical path" in res.output
    res = CliRunner().invoke(cli, [*args, "-o", "json"])
    doc = json.loads(res.output)
    assert doc["estimate"]["cost"]["monthly_total"] == _plan()["cost"]["monthly_total"]
    assert doc["estimate"]["duration"]["critical_path"]
