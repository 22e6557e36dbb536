"""The monthly cost of the stack while paused, beside the running one, line by line.

`pause` stops what bills by the hour for compute (every pod, Argo CD included, and the
Cloud SQL instance) and removes the uptime checks; everything that keeps the data, the
names and the URLs stays and keeps billing. Each line says which it is and why.
"""

from __future__ import annotations

from typing import Any

TARGET = 0.70  # the paused cost aims at least this much below the running one

# item -> why it costs nothing while paused
STOPPED: dict[str, str] = {
    "GKE Autopilot pods": "every pod of the stack, Argo CD included, is scaled to zero; "
    "Autopilot bills pods, not nodes",
    "Cloud SQL instance": "stopped (activation policy NEVER): no vCPU or memory is billed",
    "Cloud Monitoring: uptime checks": "removed while paused (an uptime check cannot be "
    "disabled) and created again by `resume`",
}
# item -> why it keeps billing
KEPT: dict[str, str] = {
    "cluster management fee": "the cluster stays (names, Workload Identity, the Gateway); "
    "GKE bills it per hour whether pods run or not",
    "Cloud SQL storage": "the databases are kept; a stopped instance's disk still bills",
    "Cloud SQL backups": "the kept backups still bill (no new automated backup runs)",
    "Cloud NAT": "the gateway bills per hour for each node behind it; Autopilot keeps "
    "nodes for its system pods while the cluster exists",
    "load balancer": "the Gateway's forwarding rule stays so the URLs keep their address",
    "static IP": "the servers' address stays reserved so the URLs do not change",
    "GCS": "the artifacts are kept",
    "GCS: SQL exports": "the exports are kept until backup_retention_days",
    "Artifact Registry": "the images are kept",
    "Secret Manager": "the secrets are kept",
    "KMS": "the keys are kept (they encrypt the kept data and state)",
    "Cloud Monitoring: alerting": "the disabled policies are kept; counted as billed",
}
KEPT_DEFAULT = "kept at the running estimate (an upper bound: a paused stack logs less)"


def add_paused(cost: dict[str, Any]) -> None:
    """Give each line `paused_monthly` and `paused_why`, and the cost its paused total and,
    when the saving is under TARGET, a note naming the lines that keep it higher."""
    for line in cost["lines"]:
        item = line["item"]
        if item in STOPPED:
            line["paused_monthly"], line["paused_why"] = 0.0, STOPPED[item]
        else:
            line["paused_monthly"] = line["monthly"]
            line["paused_why"] = KEPT.get(item, KEPT_DEFAULT)
    running = float(cost.get("monthly_total") or 0.0)
    paused = round(sum(float(ln["paused_monthly"] or 0.0) for ln in cost["lines"]), 2)
    cost["paused_total"] = paused
    saving = 1 - paused / running if running else 0.0
    cost["paused_saving"] = round(saving, 3)
    if saving >= TARGET:
        cost["paused_note"] = f"paused costs {saving:.0%} less than running"
        return
    kept = sorted(
        (ln for ln in cost["lines"] if ln["paused_monthly"]),
        key=lambda ln: -float(ln["paused_monthly"]),
    )
    cur = cost.get("currency", "")
    cost["paused_note"] = (
        f"paused costs {saving:.0%} less than running, short of {TARGET:.0%}: "
        + "; ".join(
            f"{ln['item']} ({ln['paused_monthly']:.2f} {cur}): {ln['paused_why']}"
            for ln in kept[:4]
        )
    )
