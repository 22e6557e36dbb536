"""The monthly cost estimate of a plan, line by line, from its resources and the GitOps tree.

Quantities come from the plan (the Cloud SQL tier, HA and disk, how many secrets, keys,
addresses and NAT gateways the program registers), from the pods' requests (`pods.py`) and,
where the plan cannot know usage, from `cfg.estimate` (each such number is listed among the
assumptions with the setting that changes it). Prices come from a `PriceBook`; a missing
price leaves its line unpriced and says so, and the total then counts only priced lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .pods import pod_requests, totals
from .prices import PRICE_KEYS, PriceBook
from .usage import backup_storage, log_volumes

if TYPE_CHECKING:
    from ..config import DeploymentConfig
    from ..gitops.render import Rendered

SQL_DEFAULT_DISK_GB = 10  # Cloud SQL's default when the program sets no disk size
_CUSTOM_TIER = re.compile(r"^db-custom-(\d+)-(\d+)$")
_STANDARD_TIER = re.compile(r"^db-n1-(standard|highmem)-(\d+)$")
_N1_MEMORY_PER_CPU = {"standard": 3.75, "highmem": 6.5}


def sql_tier_shape(tier: str) -> tuple[float, float] | None:
    """(vCPUs, GiB memory) of a dedicated-core tier; None for shared-core or unknown tiers."""
    m = _CUSTOM_TIER.match(tier)
    if m:
        return float(m.group(1)), int(m.group(2)) / 1024
    m = _STANDARD_TIER.match(tier)
    if m:
        cpus = float(m.group(2))
        return cpus, cpus * _N1_MEMORY_PER_CPU[m.group(1)]
    return None


@dataclass
class Line:
    item: str
    priced_by: str
    quantity: str
    monthly: float | None
    note: str = ""
    figures: list[dict[str, Any]] = field(default_factory=list)  # each price with its origin

    def as_dict(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "priced_by": self.priced_by,
            "quantity": self.quantity,
            "monthly": None if self.monthly is None else round(self.monthly, 2),
            "note": self.note,
            "figures": self.figures,
        }


@dataclass
class _Builder:
    prices: PriceBook
    lines: list[Line] = field(default_factory=list)

    def add(
        self,
        item: str,
        priced_by: str,
        quantity: str,
        parts: list[tuple[str, float]],
        note: str = "",
        scale: float = 1.0,
    ) -> Line:
        """A line whose cost is `scale` x the sum of `price[key] * amount` over `parts`."""
        missing = [k for k, _ in parts if self.prices.get(k) is None]
        figures = [self._figure(k) for k, _ in parts if self.prices.get(k) is not None]
        if missing:
            why = self.prices.unavailable or (
                f"no public {', '.join(missing)} price in the {self.prices.source} for "
                f"{self.prices.region}; `--pricing live` reads it from the Cloud Billing Catalog"
            )
            line = Line(item, priced_by, quantity, None, "; ".join(filter(None, [why, note])))
        else:
            total = sum(float(self.prices.get(k) or 0) * amount for k, amount in parts) * scale
            line = Line(item, priced_by, quantity, total, note)
        line.figures = figures
        self.lines.append(line)
        return line

    def _figure(self, key: str) -> dict[str, Any]:
        return {
            "price": self.prices.get(key),
            "unit": f"{self.prices.currency}/{PRICE_KEYS[key]}",
            "key": key,
            **self.prices.origin(key).as_dict(),
        }


def _count(resources: list[dict[str, Any]], type_token: str) -> int:
    return sum(1 for r in resources if r["type"] == type_token)


def _sql(resources: list[dict[str, Any]]) -> dict[str, Any]:
    for r in resources:
        if r["type"] == "gcp:sql/databaseInstance:DatabaseInstance":
            settings = r["inputs"].get("settings") or {}
            backup = settings.get("backupConfiguration") or {}
            retention = backup.get("backupRetentionSettings") or {}
            return {
                "tier": str(settings.get("tier", "")),
                "ha": settings.get("availabilityType") == "REGIONAL",
                "disk_gb": float(settings.get("diskSize") or SQL_DEFAULT_DISK_GB),
                "backups": bool(backup.get("enabled")),
                "retained_backups": int(retention.get("retainedBackups") or 7),
            }
    return {}


def _load_balancers(rendered: Rendered) -> int:
    """Forwarding rules the cluster makes: one per Gateway, one per LoadBalancer Service."""
    n = sum(1 for o in rendered.objects if o.get("kind") == "Gateway")
    for app in rendered.apps:
        values = ((app.manifest["spec"].get("source") or {}).get("helm") or {}).get(
            "valuesObject"
        ) or {}
        service = (values.get("controller") or {}).get("service") or {}
        if app.key == "ingress_nginx" and service.get("type") == "LoadBalancer":
            n += 1
    return n


def estimate_cost(
    cfg: DeploymentConfig,
    resources: list[dict[str, Any]],
    rendered: Rendered,
    prices: PriceBook,
) -> dict[str, Any]:
    """The `cost` section of the plan contract."""
    est = cfg.estimate
    h = prices.hours_per_month
    b = _Builder(prices)
    assumptions: list[dict[str, str]] = []

    def assume(what: str, value: str, setting: str) -> None:
        assumptions.append({"assumption": what, "value": value, "setting": setting})

    pods, unpriced_pods = pod_requests(rendered)
    cpu, mem, eph = totals(pods)
    b.add(
        "GKE Autopilot pods",
        "requested vCPU, memory and ephemeral storage of every pod",
        f"{cpu:.2f} vCPU, {mem:.2f} GiB memory, {eph:.2f} GiB ephemeral, "
        f"{sum(p.replicas for p in pods)} pods",
        [
            ("gke_autopilot_vcpu_hour", cpu * h),
            ("gke_autopilot_memory_gib_hour", mem * h),
            ("gke_autopilot_ephemeral_gib_hour", eph * h),
        ],
    )
    if unpriced_pods:
        b.lines[-1].note = "; ".join(filter(None, [b.lines[-1].note, *unpriced_pods]))
    assume(
        "pods without requests get Autopilot's defaults",
        "0.5 vCPU, 2 GiB, 1 GiB ephemeral per container",
        "the charts' resources in the Helm values",
    )
    clusters = _count(resources, "gcp:container/cluster:Cluster")
    b.add(
        "cluster management fee",
        "flat, per cluster",
        f"{clusters} cluster",
        [("gke_cluster_fee_hour", clusters * h)],
    )
    assume(
        "GKE's free-tier credit (one Autopilot cluster per billing account) is not deducted",
        "0",
        "—",
    )

    sql = _sql(resources)
    exports_gib = 0.0
    if sql:
        shape = sql_tier_shape(sql["tier"])
        ha = sql["ha"]
        kind = "REGIONAL (HA)" if ha else "ZONAL"
        if shape is None:
            b.lines.append(
                Line(
                    "Cloud SQL instance",
                    "tier, HA",
                    f"{sql['tier']}, {kind}",
                    None,
                    f"no price rule for the tier {sql['tier']} (only db-custom-* and db-n1-*)",
                )
            )
        else:
            vcpu, ram = shape
            pre = "sql_ha_" if ha else "sql_"
            b.add(
                "Cloud SQL instance",
                "tier, HA",
                f"{sql['tier']} ({vcpu:g} vCPU, {ram:g} GiB), {kind}",
                [(f"{pre}vcpu_hour", vcpu * h), (f"{pre}memory_gib_hour", ram * h)],
            )
        disk_key = "sql_ha_ssd_gib_month" if ha else "sql_ssd_gib_month"
        b.add(
            "Cloud SQL storage",
            "SSD GiB",
            f"{sql['disk_gb']:g} GiB SSD",
            [(disk_key, sql["disk_gb"])],
        )
        assume("Cloud SQL disk size (grows automatically)", f"{sql['disk_gb']:g} GiB", "—")
        if sql["backups"]:
            bk = backup_storage(cfg, sql["disk_gb"], sql["retained_backups"])
            b.add(
                "Cloud SQL backups",
                "backup GiB (automated and on-demand)",
                f"{bk.sql_gib:.1f} GiB ({bk.automated_gib:.1f} automated, "
                f"{bk.on_demand_gib:.1f} on-demand)",
                [("sql_backup_gib_month", bk.sql_gib)],
                note="incremental backups; on-demand ones stay until deleted",
            )
            for a in bk.assumptions:
                assume(a.assumption, a.value, a.setting)
            exports_gib = bk.exports_gib

    nats = _count(resources, "gcp:compute/routerNat:RouterNat")
    if nats:
        b.add(
            "Cloud NAT",
            "gateway uptime per VM, data processed",
            f"{nats} gateway, {est.nat_vms} VMs, {est.nat_gb:g} GiB",
            [("nat_gateway_vm_hour", est.nat_vms * nats * h), ("nat_data_gib", est.nat_gb)],
        )
        assume("nodes behind Cloud NAT", str(est.nat_vms), "estimate.nat_vms")
        assume("data through Cloud NAT", f"{est.nat_gb:g} GiB/month", "estimate.nat_gb")

    lbs = _load_balancers(rendered)
    b.add(
        "load balancer",
        "forwarding rule",
        f"{lbs} forwarding rule",
        [("lb_forwarding_rule_hour", lbs * h)],
    )
    ips = sum(
        1
        for r in resources
        if r["type"] == "gcp:compute/address:Address"
        and r["inputs"].get("addressType", "EXTERNAL") == "EXTERNAL"
    )
    b.add("static IP", "in-use external IPv4", f"{ips} address", [("static_ip_hour", ips * h)])

    buckets = _count(resources, "gcp:storage/bucket:Bucket")
    b.add(
        "GCS",
        "stored GiB (Standard)",
        f"{est.gcs_gb:g} GiB in {buckets} buckets",
        [("gcs_standard_gib_month", est.gcs_gb)],
    )
    assume("data in the artifact and MLflow buckets", f"{est.gcs_gb:g} GiB", "estimate.gcs_gb")
    if exports_gib:
        b.add(
            "GCS: SQL exports",
            "stored GiB (Standard) in the backup bucket",
            f"{exports_gib:.1f} GiB",
            [("gcs_standard_gib_month", exports_gib)],
            note="exports are deleted after backup_retention_days",
        )
    b.add(
        "Artifact Registry",
        "stored GiB",
        f"{est.registry_gb:g} GiB",
        [("artifact_registry_gib_month", est.registry_gb)],
    )
    assume("images in Artifact Registry", f"{est.registry_gb:g} GiB", "estimate.registry_gb")

    secrets = _count(resources, "gcp:secretmanager/secret:Secret")
    b.add(
        "Secret Manager",
        "active secret versions",
        f"{secrets} versions",
        [("secret_version_month", secrets)],
    )
    assume("one active version per secret (no free tier deducted)", str(secrets), "—")
    keys = _count(resources, "gcp:kms/cryptoKey:CryptoKey") + (
        1 if cfg.secrets_provider == "gcpkms" else 0
    )
    b.add("KMS", "key versions", f"{keys} key versions", [("kms_key_version_month", keys)])
    assume(
        "one version per key (the storage key gains one per 90-day rotation)",
        str(keys),
        "secrets_provider",
    )
    _logging(b, cfg, resources, assume)
    _monitoring(b, resources, assume)

    priced = [line.monthly for line in b.lines if line.monthly is not None]
    complete = len(priced) == len(b.lines)
    out = {
        "currency": prices.currency,
        "region": prices.region,
        # a partial total counts the priced lines only; `unpriced` names the others
        "monthly_total": round(sum(priced), 2),
        "complete": complete,
        "partial": not complete,
        "unpriced": [line.item for line in b.lines if line.monthly is None],
        "lines": [line.as_dict() for line in b.lines],
        "source": prices.source,
        "as_of": prices.as_of,
        "unavailable": prices.unavailable,
        "assumptions": assumptions,
        "pods": [p.as_dict() for p in pods],
    }
    from .paused import add_paused

    add_paused(out)  # `pause`: each line's paused cost beside the running one
    return out


_AUDITED = "gcp:projects/iAMAuditConfig:IAMAuditConfig"
_SUBNET = "gcp:compute/subnetwork:Subnetwork"
# what the program would create that Cloud Monitoring bills (alerting, uptime checks, metrics)
MONITORING_TYPES = (
    "gcp:monitoring/alertPolicy:AlertPolicy",
    "gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig",
    "gcp:logging/metric:Metric",
)


def _logging(
    b: _Builder, cfg: DeploymentConfig, resources: list[dict[str, Any]], assume: Any
) -> None:
    """Cloud Logging ingestion from what the plan turns on: the free allotment (per project)
    is taken off the sum, and each source pays its share of the rest."""
    audit_on = any(
        r["type"] == _AUDITED and r["inputs"].get("service") == "storage.googleapis.com"
        for r in resources
    )
    sampling = max(
        (
            float((r["inputs"].get("logConfig") or {}).get("flowSampling") or 0)
            for r in resources
            if r["type"] == _SUBNET and r["inputs"].get("logConfig")
        ),
        default=0.0,
    )
    logs = log_volumes(cfg, audit_on, sampling)
    for a in logs.assumptions:
        assume(a.assumption, a.value, a.setting)
    free = b.prices.free_tiers.get("logging_gib", 0.0)
    total = logs.total_gib
    share = max(0.0, total - free) / total if total else 0.0
    why = f"{total:.1f} GiB ingested in all, {free:g} GiB free per project: each pays {share:.0%}"
    for item, gib, by in (
        ("logging: workload and platform logs", logs.workload_gib, "ingested GiB"),
        ("logging: Data Access audit logs", logs.audit_gib, "ingested GiB (data_access_logs)"),
        ("logging: VPC flow logs", logs.flow_gib, "ingested GiB (flow_log_sampling)"),
    ):
        b.add(item, by, f"{gib:.2f} GiB", [("logging_gib", gib)], note=why, scale=share)


def _monitoring(b: _Builder, resources: list[dict[str, Any]], assume: Any) -> None:
    """Cloud Monitoring bills alerting conditions (and the series their queries return) and
    uptime-check executions past a free allotment; Google's own metrics are not billed."""
    made = [r for r in resources if r["type"] in MONITORING_TYPES]
    if not made:
        b.lines.append(
            Line(
                "Cloud Monitoring",
                "alerting policies, uptime checks, log-based metrics the stack creates",
                "none created",
                0.0,
                "the plan creates none; GKE and Cloud SQL system metrics are not billed",
            )
        )
        return
    policies = [r for r in made if r["type"] == MONITORING_TYPES[0]]
    conditions = [c for p in policies for c in (p["inputs"].get("conditions") or [])]
    metric = [c for c in conditions if "conditionThreshold" in c]
    # a metric condition runs every 30 s and each of ours returns about one series
    series_m = len(metric) * b.prices.hours_per_month * 3600 / 30 / 1e6
    b.add(
        "Cloud Monitoring: alerting",
        "conditions, series returned",
        f"{len(conditions)} conditions in {len(policies)} policies",
        [("monitoring_condition_month", len(conditions)), ("monitoring_million_series", series_m)],
    )
    assume(
        "each metric condition returns one series per 30-s evaluation",
        f"{series_m:.2f} M series",
        "monitoring",
    )
    checks = [r for r in made if r["type"] == MONITORING_TYPES[1]]
    executions = sum(_uptime_executions(c["inputs"], b.prices.hours_per_month) for c in checks)
    free = b.prices.free_tiers.get("uptime_executions", 0.0)
    b.lines.append(
        Line(
            "Cloud Monitoring: uptime checks",
            "executions",
            f"{len(checks)} checks, {executions / 1e6:.2f} M executions",
            0.0 if executions <= free else None,
            f"within the {free / 1e6:g} M free executions per project"
            if executions <= free
            else "past the free allotment: not priced offline",
        )
    )


def _uptime_executions(inputs: dict[str, Any], hours: float) -> float:
    """Each probe region runs the check once a period (USA is three checkers)."""
    checkers = sum(3 if r == "USA" else 1 for r in inputs.get("selectedRegions") or ["USA"] * 2)
    period = float(str(inputs.get("period") or "60s").rstrip("s"))
    return checkers * hours * 3600 / period
