"""Unit prices for the cost estimate: a dated snapshot shipped in the package, or live ones.

`snapshot_prices(region)` reads `prices.json` (list prices per region, USD). `live_prices`
reads the Cloud Billing Catalog API (`services` and their `skus`) with the caller's
credentials and picks each price by the SKU's description, region and usage unit. Either
way a price that is not found stays missing: the estimate then says so instead of guessing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

CATALOG = "https://cloudbilling.googleapis.com/v1"

# Every price the estimate uses, with its unit (what the monthly lines multiply).
PRICE_KEYS: dict[str, str] = {
    "gke_autopilot_vcpu_hour": "vCPU-hour",
    "gke_autopilot_memory_gib_hour": "GiB-hour",
    "gke_autopilot_ephemeral_gib_hour": "GiB-hour",
    "gke_cluster_fee_hour": "cluster-hour",
    "sql_vcpu_hour": "vCPU-hour",
    "sql_memory_gib_hour": "GiB-hour",
    "sql_ha_vcpu_hour": "vCPU-hour",
    "sql_ha_memory_gib_hour": "GiB-hour",
    "sql_ssd_gib_month": "GiB-month",
    "sql_ha_ssd_gib_month": "GiB-month",
    "sql_backup_gib_month": "GiB-month",
    "nat_gateway_vm_hour": "VM-hour",
    "nat_data_gib": "GiB",
    "lb_forwarding_rule_hour": "rule-hour",
    "static_ip_hour": "IP-hour",
    "gcs_standard_gib_month": "GiB-month",
    "artifact_registry_gib_month": "GiB-month",
    "secret_version_month": "version-month",
    "kms_key_version_month": "key-version-month",
    "logging_gib": "GiB",
    "monitoring_condition_month": "condition-month",
    "monitoring_million_series": "million time series",
}


@dataclass(frozen=True)
class Origin:
    """Where one price came from: a page or catalog SKU, and the date it held."""

    source: str  # a URL, or the catalog SKU's description
    as_of: str
    note: str = ""  # a rule that extends it to this region, or that it was carried over

    def as_dict(self) -> dict[str, str]:
        out = {"source": self.source, "as_of": self.as_of}
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class PriceBook:
    region: str
    currency: str
    source: str
    as_of: str
    prices: dict[str, float] = field(default_factory=dict)
    hours_per_month: float = 730.0
    free_tiers: dict[str, float] = field(default_factory=dict)
    # why a region has no prices at all (shown instead of a total)
    unavailable: str | None = None
    origins: dict[str, Origin] = field(default_factory=dict)  # price key -> where it came from

    def get(self, key: str) -> float | None:
        return self.prices.get(key)

    def origin(self, key: str) -> Origin:
        return self.origins.get(key) or Origin(self.source, self.as_of)


@cache
def _snapshot() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("prices.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def snapshot_regions() -> list[str]:
    return sorted(_snapshot()["regions"])


def _origin(data: dict[str, Any], source_id: str, note: str = "") -> Origin:
    src = (data.get("sources") or {}).get(source_id) or {}
    what = str(src.get("what", ""))
    return Origin(
        str(src.get("url", source_id)),
        str(src.get("as_of", data.get("as_of", ""))),
        "; ".join(filter(None, [note, what])),
    )


def snapshot_prices(region: str, snapshot: dict[str, Any] | None = None) -> PriceBook:
    """The shipped snapshot for `region`: its regional figures plus the global ones, each
    with its origin. A region the snapshot lacks gets an empty book that says so."""
    data = snapshot if snapshot is not None else _snapshot()
    book = PriceBook(
        region=region,
        currency=str(data["currency"]),
        source="snapshot",
        as_of=str(data["as_of"]),
        hours_per_month=float(data.get("hours_per_month", 730)),
        free_tiers={k: float(_amount(v)) for k, v in (data.get("free_tiers") or {}).items()},
    )
    regional = (data.get("regions") or {}).get(region)
    if regional is None:
        book.unavailable = (
            f"the price snapshot of {book.as_of} has no prices for {region} "
            f"(it covers {', '.join(sorted(data.get('regions') or {}))}); "
            "`--pricing live` reads them from the Cloud Billing Catalog API"
        )
        return book
    rule = str(data.get("global_rule", ""))
    for scope, figures in (("global", data.get("global") or {}), ("region", regional)):
        for key, entry in figures.items():
            if key not in PRICE_KEYS:
                continue
            price, source_id = _figure(entry)
            book.prices[key] = price
            book.origins[key] = _origin(data, source_id, rule if scope == "global" else "")
    return book


def _figure(entry: Any) -> tuple[float, str]:
    """A snapshot figure: `[price, source id]` (or a bare price from an older snapshot)."""
    if isinstance(entry, list):
        return float(entry[0]), str(entry[1])
    return float(entry), ""


def _amount(v: Any) -> Any:
    return v["amount"] if isinstance(v, dict) else v


# --------------------------------------------------------------------------- live


@dataclass(frozen=True)
class SkuRule:
    """How to find one price in the catalog: the service's display name, a pattern for the
    SKU description, and the catalog usage unit with the factor to our unit."""

    service: str
    description: str
    units: dict[str, float]  # catalog usageUnit -> multiplier to PRICE_KEYS' unit
    regional: bool = True  # False: a global SKU


_HOURLY = {"h": 1.0}
_GIB_HOURLY = {"GiBy.h": 1.0}
_GIB_MONTHLY = {"GiBy.mo": 1.0}
_GIB = {"GiBy": 1.0}
SKU_RULES: dict[str, SkuRule] = {
    "gke_autopilot_vcpu_hour": SkuRule(
        "Kubernetes Engine", r"^Autopilot Pod mCPU Requests", {"h": 1000.0}
    ),
    "gke_autopilot_memory_gib_hour": SkuRule(
        "Kubernetes Engine", r"^Autopilot Pod Memory Requests", _GIB_HOURLY
    ),
    "gke_autopilot_ephemeral_gib_hour": SkuRule(
        "Kubernetes Engine", r"^Autopilot Pod Ephemeral Storage Requests", _GIB_HOURLY
    ),
    # billed as "Autopilot Kubernetes Clusters" (the cluster management fee)
    "gke_cluster_fee_hour": SkuRule(
        "Kubernetes Engine", r"^Autopilot Kubernetes Clusters$", _HOURLY, regional=False
    ),
    "sql_vcpu_hour": SkuRule("Cloud SQL", r"^Cloud SQL for MySQL: Zonal - vCPU", _HOURLY),
    "sql_memory_gib_hour": SkuRule("Cloud SQL", r"^Cloud SQL for MySQL: Zonal - RAM", _GIB_HOURLY),
    "sql_ha_vcpu_hour": SkuRule("Cloud SQL", r"^Cloud SQL for MySQL: Regional - vCPU", _HOURLY),
    "sql_ha_memory_gib_hour": SkuRule(
        "Cloud SQL", r"^Cloud SQL for MySQL: Regional - RAM", _GIB_HOURLY
    ),
    "sql_ssd_gib_month": SkuRule(
        "Cloud SQL", r"^Cloud SQL for MySQL: Zonal - Standard storage", _GIB_MONTHLY
    ),
    "sql_ha_ssd_gib_month": SkuRule(
        "Cloud SQL", r"^Cloud SQL for MySQL: Regional - Standard storage", _GIB_MONTHLY
    ),
    "sql_backup_gib_month": SkuRule("Cloud SQL", r"^Cloud SQL: Backups", _GIB_MONTHLY),
    # Cloud NAT and load balancing are billed under "Networking"; the NAT SKUs are global
    "nat_gateway_vm_hour": SkuRule(
        "Networking", r"^Networking Cloud Nat Gateway Uptime$", _HOURLY, regional=False
    ),
    "nat_data_gib": SkuRule(
        "Networking", r"^Networking Cloud Nat Data Processing$", _GIB, regional=False
    ),
    # the first rules' price ("Minimum"), not the one for each further rule ("Additional")
    "lb_forwarding_rule_hour": SkuRule(
        "Networking",
        r"^Regional External Application Load Balancer Forwarding Rule Minimum",
        _HOURLY,
    ),
    # an address in use; "Static Ip Charge" is the price of a reserved, unused one
    "static_ip_hour": SkuRule(
        "Compute Engine", r"^External IP Charge on a Standard VM$", _HOURLY, regional=False
    ),
    "gcs_standard_gib_month": SkuRule("Cloud Storage", r"^Standard Storage ", _GIB_MONTHLY),
    "artifact_registry_gib_month": SkuRule(
        "Artifact Registry", r"^Artifact Registry Storage", _GIB_MONTHLY, regional=False
    ),
    "secret_version_month": SkuRule(
        "Secret Manager", r"^Secret version replica storage", {"mo": 1.0}, regional=False
    ),
    "kms_key_version_month": SkuRule(
        "Cloud Key Management Service (KMS)",
        r"^Active (software )?symmetric key versions",
        {"mo": 1.0},
        regional=False,
    ),
    "logging_gib": SkuRule("Cloud Logging", r"^Log Storage cost", _GIB, regional=False),
}


def _unit_price(sku: dict[str, Any]) -> tuple[str, float] | None:
    """(usage unit, the first non-zero tier's price): free tiers come first in the catalog."""
    for info in sku.get("pricingInfo") or []:
        expr = info.get("pricingExpression") or {}
        unit = str(expr.get("usageUnit", ""))
        for rate in expr.get("tieredRates") or []:
            money = rate.get("unitPrice") or {}
            price = int(money.get("units") or 0) + int(money.get("nanos") or 0) / 1e9
            if price > 0:
                return unit, price
    return None


def _match(
    skus: list[dict[str, Any]], rule: SkuRule, region: str
) -> tuple[float, dict[str, Any]] | None:
    """(price in our unit, the SKU) of the first on-demand SKU the rule matches."""
    pattern = re.compile(rule.description, re.I)
    for sku in skus:
        if not pattern.search(str(sku.get("description", ""))):
            continue
        regions = [str(r) for r in sku.get("serviceRegions") or []]
        if rule.regional and region not in regions:
            continue
        if (sku.get("category") or {}).get("usageType", "OnDemand") != "OnDemand":
            continue
        found = _unit_price(sku)
        if found is None or found[0] not in rule.units:
            continue
        return round(found[1] * rule.units[found[0]], 10), sku
    return None


def _paged(request: Any, url: str, key: str, params: dict[str, str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token = ""
    while True:
        query = {**params, **({"pageToken": token} if token else {})}
        resp = request("GET", url, params=query)
        if resp.status_code != 200:
            raise RuntimeError(f"Cloud Billing Catalog API: HTTP {resp.status_code} for {url}")
        data = resp.json()
        items.extend(data.get(key) or [])
        token = data.get("nextPageToken") or ""
        if not token:
            return items


def live_prices(
    region: str,
    request: Any,
    as_of: str,
    currency: str = "USD",
    catalog: dict[str, list[dict[str, Any]]] | None = None,
) -> PriceBook:
    """Prices for `region` from the Cloud Billing Catalog API.

    `request(method, url, params=...)` is an authorised HTTP call (an AuthorizedSession's
    `request`). A price whose SKU is not found stays missing and is reported as such.
    `catalog` keeps the services' SKU lists between calls (one read for many regions).
    """
    snap = _snapshot()
    book = PriceBook(
        region=region,
        currency=currency,
        source="live (Cloud Billing Catalog API)",
        as_of=as_of,
        hours_per_month=float(snap.get("hours_per_month", 730)),
        free_tiers={k: float(_amount(v)) for k, v in (snap.get("free_tiers") or {}).items()},
    )
    skus = catalog if catalog is not None else {}
    if "services" not in skus:  # the service list itself, under a key no service has
        skus["services"] = _paged(request, f"{CATALOG}/services", "services", {"pageSize": "5000"})
    by_name = {str(s.get("displayName")): str(s.get("name")) for s in skus["services"]}
    for key, rule in SKU_RULES.items():
        service = by_name.get(rule.service)
        if service is None:
            continue
        if service not in skus:
            skus[service] = _paged(
                request,
                f"{CATALOG}/{service}/skus",
                "skus",
                {"currencyCode": currency, "pageSize": "5000"},
            )
        found = _match(skus[service], rule, region)
        if found is not None:
            price, sku = found
            book.prices[key] = price
            book.origins[key] = Origin(
                f"Cloud Billing Catalog API: {rule.service} SKU {sku.get('skuId', '?')} "
                f"'{sku.get('description', '')}'",
                as_of,
            )
    if not book.prices:
        book.unavailable = f"the Cloud Billing Catalog API listed no prices for {region}"
    return book


def load_prices(
    region: str, pricing: str = "snapshot", request: Any = None, today: str | None = None
) -> PriceBook:
    """The price book `plan` uses: `snapshot`, or `live` with Application Default
    Credentials (falling back to the snapshot, and saying why, when there are none)."""
    if pricing != "live":
        return snapshot_prices(region)
    from datetime import UTC, datetime

    as_of = today or datetime.now(UTC).date().isoformat()
    if request is None:
        try:
            import google.auth
            from google.auth.transport.requests import AuthorizedSession

            creds, _ = google.auth.default(
                scopes=["https://www.googleapis.com/auth/cloud-billing.readonly"]
            )
            request = AuthorizedSession(creds).request  # type: ignore[no-untyped-call]
        except Exception as e:  # noqa: BLE001 - no credentials or no network: the snapshot stands in
            why = (
                "no Google Application Default Credentials; run `gcloud auth "
                "application-default login` to price live"
                if type(e).__name__ == "DefaultCredentialsError"
                else f"{e.__class__.__name__}: {str(e)[:120]}"
            )
            return _live_fallback(region, f"snapshot (live pricing unavailable: {why})")
    try:
        return live_prices(region, request, as_of)
    except Exception as e:  # noqa: BLE001 - any live-pricing failure falls back to the snapshot
        return _live_fallback(region, f"snapshot (live pricing failed: {str(e)[:120]})")


def _live_fallback(region: str, source: str) -> PriceBook:
    """The snapshot when `--pricing live` was asked for but could not run: its notes must not
    send the user back to `--pricing live`."""
    book = snapshot_prices(region)
    book.source = source
    if book.unavailable:
        book.unavailable = book.unavailable.split("; `--pricing live`")[0] + (
            "; live pricing could not run (see the price source above)"
        )
    return book


def build_snapshot(regions: list[str], request: Any, as_of: str) -> dict[str, Any]:
    """A new `prices.json` from the Catalog API: the global figures once, each region's own
    figures, and what the catalog did not have (those items stay unpriced in the estimate)."""
    snap = _snapshot()
    sid = f"catalog-{as_of}"
    keep = ("about", "currency", "hours_per_month", "free_tiers", "global_rule")
    out: dict[str, Any] = {k: snap[k] for k in keep if k in snap}
    out.update(
        as_of=as_of,
        sources={
            **{k: v for k, v in (snap.get("sources") or {}).items() if k in _free_sources(snap)},
            sid: {
                "url": CATALOG,
                "as_of": as_of,
                "read": as_of,
                "what": "Cloud Billing Catalog API list prices "
                "(python -m zenml_gcp_gitops.estimate.prices)",
            },
        },
        regions={},
    )
    out["global"] = {}
    missing: dict[str, list[str]] = {}
    catalog: dict[str, list[dict[str, Any]]] = {}
    for region in regions:
        book = live_prices(region, request, as_of, str(snap["currency"]), catalog)
        mine = out["regions"].setdefault(region, {})
        for key in SKU_RULES:
            target = mine if SKU_RULES[key].regional else out["global"]
            if key in book.prices:
                target[key] = [book.prices[key], sid]
            elif SKU_RULES[key].regional:
                missing.setdefault(region, []).append(key)
    # prices the catalog has no SKU rule for (alerting) stay as the snapshot has them
    for key, figure in (snap.get("global") or {}).items():
        if key in PRICE_KEYS and key not in SKU_RULES:
            out["global"][key] = figure
            source = _figure(figure)[1]
            out["sources"][source] = snap["sources"][source]
    missing_global = sorted(k for k, r in SKU_RULES.items() if not r.regional)
    gaps = [k for k in missing_global if k not in out["global"]]
    if gaps:
        missing["global"] = gaps
    out["missing"] = missing
    return out


def _free_sources(snap: dict[str, Any]) -> set[str]:
    return {
        str(v.get("source")) for v in (snap.get("free_tiers") or {}).values() if isinstance(v, dict)
    }


def main(argv: list[str] | None = None) -> int:
    """`python -m zenml_gcp_gitops.estimate.prices OUT.json`: refresh the snapshot for every
    region the config accepts, with Application Default Credentials (for maintainers)."""
    import sys
    from datetime import UTC, datetime
    from pathlib import Path

    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    from ..config import SUPPORTED_REGIONS

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m zenml_gcp_gitops.estimate.prices OUT.json", file=sys.stderr)
        return 2
    creds, _ = google.auth.default(
        scopes=["https://www.googleapis.com/auth/cloud-billing.readonly"]
    )
    request = AuthorizedSession(creds).request  # type: ignore[no-untyped-call]
    data = build_snapshot(sorted(SUPPORTED_REGIONS), request, datetime.now(UTC).date().isoformat())
    Path(args[0]).write_text(json.dumps(data, indent=2) + "\n")
    gaps = sum(len(keys) for keys in data["missing"].values())
    print(
        f"{len(data['regions'])} regions written to {args[0]}; "
        f"{gaps} prices the catalog did not have are listed under 'missing'"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
