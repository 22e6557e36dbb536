"""Prices of the cost estimate: the snapshot covers every supported region, each figure with
its origin, and `--pricing live` reads Cloud Billing Catalog responses built from the
`google-cloud-billing` client's own types (so the JSON has the API's shape: camelCase,
int64 units as strings, tiered rates, paging)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from zenml_gcp_gitops.cli import cli
from zenml_gcp_gitops.config import SUPPORTED_REGIONS, build_config
from zenml_gcp_gitops.estimate.prices import (
    PRICE_KEYS,
    SKU_RULES,
    build_snapshot,
    live_prices,
    snapshot_prices,
)
from zenml_gcp_gitops.outputs import InfraOutputs
from zenml_gcp_gitops.plan import estimates, offline_plan

H = 730


def cfg_of(region: str, **kw: Any) -> Any:
    return build_config(None, {"project": "my-project-1", "region": region, **kw})


# --------------------------------------------------------------------------- snapshot


@pytest.fixture(scope="module")
def base_plan() -> dict[str, Any]:
    return offline_plan(cfg_of("us-central1"))


def test_every_supported_region_has_a_numeric_total_and_sourced_lines(
    base_plan: dict[str, Any],
) -> None:
    """The same resources priced in each region the config accepts (the program's
    resources do not depend on the region's prices): a number, never null, and every
    figure behind a priced line names its source and date."""
    outputs = InfraOutputs.from_mapping(base_plan["outputs"], source="the plan's outputs")
    for region in sorted(SUPPORTED_REGIONS):
        cfg = cfg_of(region)
        cost = estimates(cfg, outputs, base_plan["resources"], snapshot_prices(region))["cost"]
        assert isinstance(cost["monthly_total"], float), region
        assert cost["monthly_total"] > 0, region
        assert cost["unavailable"] is None, region
        assert cost["partial"] is (not cost["complete"]), region
        assert cost["unpriced"] == [ln["item"] for ln in cost["lines"] if ln["monthly"] is None]
        for line in cost["lines"]:
            if line["monthly"] is None:
                assert region in line["note"] and "--pricing live" in line["note"], line
                continue
            for fig in line["figures"]:
                assert fig["source"].startswith("https://"), (region, line["item"], fig)
                assert fig["as_of"][:2] == "20" and len(fig["as_of"]) == 10, fig
        priced = sum(ln["monthly"] for ln in cost["lines"] if ln["monthly"] is not None)
        assert cost["monthly_total"] == pytest.approx(priced, abs=0.05)


def test_europe_west4_plan_json_has_a_partial_numeric_total() -> None:
    """The README's own example region: a number, marked partial, the unpriced items named."""
    res = CliRunner().invoke(
        cli,
        [
            "plan",
            "--offline",
            "--project",
            "my-project-1",
            "--region",
            "europe-west4",
            "-o",
            "json",
        ],
    )
    assert res.exit_code == 0, res.output
    cost = json.loads(res.output)["cost"]
    assert isinstance(cost["monthly_total"], float) and cost["monthly_total"] > 0
    assert cost["partial"] is True and "GKE Autopilot pods" in cost["unpriced"]
    gcs = next(ln for ln in cost["lines"] if ln["item"] == "GCS")
    assert gcs["monthly"] == pytest.approx(50 * 0.02)  # Standard Storage, Netherlands
    (fig,) = gcs["figures"]
    assert fig["as_of"] == "2025-03-06" and "pricing.yml" in fig["source"]
    text = CliRunner().invoke(
        cli, ["plan", "--offline", "--project", "my-project-1", "--region", "europe-west4"]
    )
    assert "total ≈" in text.output and "partial: without GKE Autopilot pods" in text.output


def test_snapshot_figures_name_a_known_source() -> None:
    from zenml_gcp_gitops.estimate.prices import _snapshot

    data = _snapshot()
    assert set(data["regions"]) == set(SUPPORTED_REGIONS)
    for region, figures in data["regions"].items():
        for key, (price, source) in figures.items():
            assert key in PRICE_KEYS and price > 0 and source in data["sources"], (region, key)
    for key, (_, source) in data["global"].items():
        assert source in data["sources"], key
    for src in data["sources"].values():
        assert src["url"].startswith("https://") and src["as_of"] <= data["as_of"]


def test_a_region_missing_from_the_snapshot_says_so() -> None:
    from zenml_gcp_gitops.estimate.prices import _snapshot

    snap = {**_snapshot(), "regions": {}}
    book = snapshot_prices("europe-west4", snap)
    assert book.unavailable and "no prices for europe-west4" in book.unavailable
    cost = offline_plan(cfg_of("europe-west4"), book)["cost"]
    assert cost["partial"] is True and cost["monthly_total"] == 0.0
    assert "--pricing live" in cost["unavailable"]


# --------------------------------------------------------------------------- live


def _money(price: float) -> dict[str, Any]:
    units = int(price)
    return {"currency_code": "USD", "units": units, "nanos": round((price - units) * 1e9)}


def _sku(
    sku_id: str,
    desc: str,
    unit: str,
    tiers: list[tuple[float, float]],
    regions: list[str],
    service: str,
    usage: str = "OnDemand",
) -> Any:
    from google.cloud import billing_v1 as b

    return b.Sku(
        name=f"services/x/skus/{sku_id}",
        sku_id=sku_id,
        description=desc,
        category=b.Category(service_display_name=service, usage_type=usage),
        service_regions=regions,
        pricing_info=[
            b.PricingInfo(
                pricing_expression=b.PricingExpression(
                    usage_unit=unit,
                    tiered_rates=[
                        b.PricingExpression.TierRate(start_usage_amount=start, unit_price=_money(p))
                        for start, p in tiers
                    ],
                )
            )
        ],
    )


EW4, USC1, GLOBAL = ["europe-west4"], ["us-central1", "us-east1", "us-west1"], ["global"]
# (service display name, SKUs): description strings as the catalog spells them, with
# look-alikes the rules must not take (Spot and Balanced pods, PostgreSQL, commitments).
CATALOG: dict[str, list[Any]] = {
    "Kubernetes Engine": [
        ("A1", "Autopilot Spot Pod mCPU Requests (europe-west4)", "h", [(0, 0.0000148)], EW4),
        ("A2", "Autopilot Balanced Pod mCPU Requests (europe-west4)", "h", [(0, 0.0000591)], EW4),
        ("A3", "Autopilot Pod mCPU Requests (europe-west4)", "h", [(0, 0.0000492)], EW4),
        ("A4", "Autopilot Pod Memory Requests (europe-west4)", "GiBy.h", [(0, 0.0054)], EW4),
        (
            "A5",
            "Autopilot Pod Ephemeral Storage Requests (europe-west4)",
            "GiBy.h",
            [(0, 6e-05)],
            EW4,
        ),
        ("A6", "Regional Kubernetes Clusters", "h", [(0, 0.1)], ["global"]),
        ("A7", "Autopilot Kubernetes Clusters", "h", [(0, 0.1)], ["global"]),
    ],
    "Cloud SQL": [
        ("S1", "Cloud SQL for PostgreSQL: Zonal - vCPU in Americas", "h", [(0, 0.0999)], USC1),
        ("S2", "Cloud SQL for MySQL: Zonal - vCPU in Americas", "h", [(0, 0.0413)], USC1),
        ("S3", "Cloud SQL for MySQL: Zonal - RAM in Americas", "GiBy.h", [(0, 0.007)], USC1),
        ("S4", "Cloud SQL: Backups in Americas", "GiBy.mo", [(0, 0.08)], USC1),
    ],
    "Networking": [
        ("32E2-4EFC-EF9F", "Networking Cloud Nat Gateway Uptime", "h", [(0, 0.0014)], GLOBAL),
        ("015F-5732-FFF0", "Networking Cloud Nat Data Processing", "GiBy", [(0, 0.045)], GLOBAL),
        ("8515-9425-D2CE", "Networking Cloud NAT IP Usage", "h", [(0, 0.005)], GLOBAL),
        (
            "N4",
            "Regional External Application Load Balancer Forwarding Rule Additional for "
            "Netherlands",
            "h",
            [(0, 0.01)],
            EW4,
        ),
        (
            "N5",
            "Regional External Application Load Balancer Forwarding Rule Minimum for Netherlands",
            "h",
            [(0, 0.025)],
            EW4,
        ),
    ],
    "Compute Engine": [
        ("C1", "Static Ip Charge in Netherlands", "h", [(0, 0.011)], EW4),
        ("C054-7F72-A02E", "External IP Charge on a Standard VM", "h", [(0, 0.005)], GLOBAL),
    ],
    "Cloud Storage": [
        ("G1", "Standard Storage US Multi-region", "GiBy.mo", [(0, 0.026)], ["us"]),
        ("G2", "Standard Storage Netherlands", "GiBy.mo", [(0, 0.02)], EW4),
    ],
    "Cloud Logging": [
        ("L1", "Log Storage cost", "GiBy", [(0, 0.0), (50, 0.5)], ["global"]),
    ],
}


class Catalog:
    """`services` and `services/*/skus` as the REST API returns them, two SKUs a page."""

    def __init__(self) -> None:
        from google.cloud import billing_v1 as b

        self.b = b
        self.services = [
            b.Service(name=f"services/{i:04X}", service_id=f"{i:04X}", display_name=name)
            for i, name in enumerate(CATALOG)
        ]
        self.skus = {
            s.name: [_sku(*row, service=s.display_name) for row in CATALOG[s.display_name]]
            for s in self.services
        }
        self.calls: list[tuple[str, dict[str, str]]] = []

    def request(self, method: str, url: str, params: dict[str, str] | None = None) -> Any:
        b, params = self.b, params or {}
        self.calls.append((url, params))
        page = int(params.get("pageToken") or 0)
        if url.endswith("/v1/services"):
            items = self.services[page * 2 : page * 2 + 2]
            more = len(self.services) > page * 2 + 2
            resp: Any = b.ListServicesResponse(
                services=items, next_page_token=str(page + 1) if more else ""
            )
        else:
            name = url.split("/v1/")[1].removesuffix("/skus")
            skus = self.skus[name]
            more = len(skus) > page * 2 + 2
            resp = b.ListSkusResponse(
                skus=skus[page * 2 : page * 2 + 2], next_page_token=str(page + 1) if more else ""
            )
        data = json.loads(type(resp).to_json(resp))
        return SimpleNamespace(status_code=200, json=lambda: data)


def test_live_prices_match_the_catalogs_own_sku_descriptions() -> None:
    catalog = Catalog()
    book = live_prices("europe-west4", catalog.request, as_of="2026-12-07")
    assert book.prices["gke_autopilot_vcpu_hour"] == pytest.approx(0.0492)  # mCPU-h x 1000
    assert book.prices["gke_autopilot_memory_gib_hour"] == pytest.approx(0.0054)
    assert book.prices["gke_autopilot_ephemeral_gib_hour"] == pytest.approx(6e-05)
    assert book.prices["gke_cluster_fee_hour"] == pytest.approx(0.1)
    assert book.prices["nat_gateway_vm_hour"] == pytest.approx(0.0014)
    assert book.prices["nat_data_gib"] == pytest.approx(0.045)
    assert book.prices["lb_forwarding_rule_hour"] == pytest.approx(0.025)  # not "Additional"
    assert book.prices["static_ip_hour"] == pytest.approx(0.005)  # in use, not reserved
    assert book.prices["gcs_standard_gib_month"] == pytest.approx(0.02)  # not multi-region
    assert book.prices["logging_gib"] == pytest.approx(0.5)  # past the free tier
    assert "sql_vcpu_hour" not in book.prices  # the Americas SKU does not cover europe-west4
    origin = book.origin("gke_autopilot_vcpu_hour")
    assert "A3" in origin.source and "'Autopilot Pod mCPU Requests (europe-west4)'" in origin.source
    assert origin.as_of == "2026-12-07"
    # every page was read: services and SKUs come two to a page
    assert any(c[1].get("pageToken") == "2" for c in catalog.calls)
    assert all(c[1].get("currencyCode", "USD") == "USD" for c in catalog.calls)

    us = live_prices("us-central1", catalog.request, as_of="2026-12-07")
    assert us.prices["sql_vcpu_hour"] == pytest.approx(0.0413)  # MySQL, not PostgreSQL
    assert us.prices["sql_backup_gib_month"] == pytest.approx(0.08)
    cost = offline_plan(cfg_of("us-central1"), us)["cost"]
    sql = next(ln for ln in cost["lines"] if ln["item"] == "Cloud SQL instance")
    assert sql["monthly"] == pytest.approx((0.0413 + 3.75 * 0.007) * H, abs=0.01)
    assert "S2" in sql["figures"][0]["source"]


def test_every_rule_names_a_catalog_unit() -> None:
    units = {"h", "GiBy.h", "GiBy.mo", "GiBy", "mo"}
    for key, rule in SKU_RULES.items():
        assert key in PRICE_KEYS and set(rule.units) <= units, key


def test_snapshot_refresh_keeps_what_the_catalog_has_and_names_the_rest() -> None:
    catalog = Catalog()
    snap = build_snapshot(["europe-west4", "us-central1"], catalog.request, "2026-12-07")
    assert snap["as_of"] == "2026-12-07"
    assert snap["global"]["gke_cluster_fee_hour"] == [0.1, "catalog-2026-12-07"]
    assert snap["regions"]["europe-west4"]["gcs_standard_gib_month"] == [
        0.02,
        "catalog-2026-12-07",
    ]
    assert "sql_vcpu_hour" in snap["missing"]["europe-west4"]
    assert "secret_version_month" in snap["missing"]["global"]
    # the services and each service's SKUs are read once for all regions
    skus_reads = [u for u, p in catalog.calls if u.endswith("/skus") and not p.get("pageToken")]
    assert len(skus_reads) == len(set(skus_reads))
    book = snapshot_prices("europe-west4", snap)
    assert book.origin("gcs_standard_gib_month").as_of == "2026-12-07"
    assert book.get("sql_vcpu_hour") is None


def test_refresh_command_writes_every_supported_region(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import google.auth
    from google.auth.transport import requests as auth_requests

    from zenml_gcp_gitops.estimate import prices

    catalog = Catalog()
    monkeypatch.setattr(google.auth, "default", lambda scopes=None: (object(), "p"))
    monkeypatch.setattr(
        auth_requests, "AuthorizedSession", lambda creds: SimpleNamespace(request=catalog.request)
    )
    out = tmp_path / "prices.json"
    assert prices.main([str(out)]) == 0
    data = json.loads(out.read_text())
    assert set(data["regions"]) == set(SUPPORTED_REGIONS)
    assert data["global"]["gke_cluster_fee_hour"][0] == pytest.approx(0.1)
    assert data["sources"][f"catalog-{data['as_of']}"]["url"].startswith("https://")
    book = snapshot_prices("europe-west4", data)
    assert book.get("gcs_standard_gib_month") == pytest.approx(0.02)


def test_every_fully_priced_region_has_a_dated_source_for_each_figure(
    base_plan: dict[str, Any],
) -> None:
    """A region whose book has every price is priced completely, and each figure behind its
    total names a page (or catalog extract) and the date it held; a bare number in the
    snapshot would price the region with no source."""
    outputs = InfraOutputs.from_mapping(base_plan["outputs"], source="the plan's outputs")
    full = []
    for region in sorted(SUPPORTED_REGIONS):
        book = snapshot_prices(region)
        if set(book.prices) != set(PRICE_KEYS):
            continue
        full.append(region)
        for key in PRICE_KEYS:
            origin = book.origin(key)
            assert origin.source.startswith("https://"), (region, key, origin)
            assert len(origin.as_of) == 10 and origin.as_of <= book.as_of, (region, key)
        cost = estimates(cfg_of(region), outputs, base_plan["resources"], book)["cost"]
        assert cost["complete"] is True and cost["unpriced"] == [], region
        for line in cost["lines"]:
            if line["monthly"]:
                assert line["figures"], (region, line["item"])
            for fig in line["figures"]:
                assert fig["source"].startswith("https://") and fig["as_of"], (region, fig)
    assert {"us-central1", "us-east1", "us-west1"} <= set(full)
