"""`plan`: what a deploy would create, computed offline from the real Pulumi program."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import click

from .options import ConfigSource, config_options, output_option

if TYPE_CHECKING:
    from ..config import DeploymentConfig

_COMPONENT_PREFIX = "zenml-gcp-gitops:infra:"


def _short_type(token: str) -> str:
    """`gcp:container/cluster:Cluster` -> `Cluster`."""
    return token.rsplit(":", 1)[-1]


def group_by_component(resources: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    """Top-level component name -> counts of the resource types registered under it."""
    by_urn = {r["urn"]: r for r in resources}

    def top(r: dict[str, Any]) -> str:
        while r.get("parent") in by_urn:
            r = by_urn[r["parent"]]
        t = r["type"]
        return t[len(_COMPONENT_PREFIX) :] if t.startswith(_COMPONENT_PREFIX) else "(stack)"

    groups: dict[str, Counter[str]] = {}
    for r in resources:
        if r["type"].startswith(_COMPONENT_PREFIX) and r.get("parent") is None:
            groups.setdefault(top(r), Counter())
            continue
        groups.setdefault(top(r), Counter())[_short_type(r["type"])] += 1
    return groups


def render_text(plan: dict[str, Any]) -> None:
    """The human summary: components with counts, hostnames, what ZenML will register."""
    from rich.table import Table

    from ..ui import console

    con = console()
    cfg, outputs = plan["config"], plan["outputs"]
    groups = group_by_component(plan["resources"])
    total = sum(sum(c.values()) for c in groups.values())
    con.print(
        f"[bold]Plan[/bold] for deployment [cyan]{cfg['name']}[/cyan] in "
        f"project [cyan]{cfg['project']}[/cyan], region [cyan]{cfg['region']}[/cyan]: "
        f"{total} cloud resources in {len(groups)} components"
    )
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("component")
    table.add_column("resources", justify="right")
    table.add_column("types")
    for name in sorted(groups):
        counts = groups[name]
        kinds = ", ".join(
            f"{n} {t}" for t, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        )
        table.add_row(name, str(sum(counts.values())), kinds)
    con.print(table)

    con.print()
    con.print("[bold]Endpoints[/bold]")
    ip_note = "" if cfg.get("domain") else " (nip.io name of the static IP reserved at deploy)"
    con.print(f"  ZenML   https://{outputs['zenml_host']}{ip_note}")
    con.print(f"  MLflow  https://{outputs['mlflow_host']}")
    con.print(f"  GKE     {outputs['cluster_name']} ({outputs['cluster_location']}), DNS endpoint")

    stack = plan.get("zenml_stack") or {}
    con.print()
    if stack:
        con.print(f"[bold]ZenML stack[/bold] [cyan]{stack.get('name', '?')}[/cyan]")
        connector = stack.get("connector") or {}
        if connector:
            con.print(
                f"  connector           {connector.get('name')} "
                f"({connector.get('type')}, auth {connector.get('auth_method')})"
            )
        for kind, comp in (stack.get("components") or {}).items():
            con.print(f"  {kind:<20}{comp.get('name')} (flavor {comp.get('flavor')})")
    else:
        con.print("[bold]ZenML stack[/bold]: not available in this build")
    con.print(
        "\n[bold]Encryption[/bold]: the stack's KMS key (CMEK) on the buckets, the registry, "
        "the secrets and Cloud SQL. The registry's, the secrets' and the SQL instance's key "
        "can only be set when they are created: an existing deployment keeps the encryption "
        "they were created with, and is never replaced to change it."
    )
    apps = (plan.get("argocd") or {}).get("applications") or []
    if apps:
        con.print(f"\n[bold]Argo CD[/bold]: {len(apps)} applications under the root app")
    _render_dns(plan)
    render_estimate({"cost": plan.get("cost"), "duration": plan.get("duration")})
    con.print(
        "\n[dim]Offline plan: no cloud calls; computed values are placeholders. "
        "`--output json` prints the full plan.[/dim]"
    )


def print_version_changes(changes: list[Any]) -> None:
    """Deployed and new versions side by side (nothing when nothing changes)."""
    if not changes:
        return
    from rich.table import Table

    from ..ui import console

    table = Table(title="Version changes", box=None, pad_edge=False, header_style="bold")
    for col in ("component", "deployed", "new", ""):
        table.add_column(col)
    for c in changes:
        mark = {"downgrade": "[red]downgrade[/red]", "upgrade": "upgrade"}.get(c.direction, "")
        table.add_row(c.key, c.old, c.new, mark)
    console().print(table)


def ha_difference(
    cfg: DeploymentConfig, plan: dict[str, Any] | None = None, prices: Any = None
) -> dict[str, Any]:
    """The HA and the single-zone shape of this config side by side, with their monthly
    cost when the plan has a cost estimate (the other shape is priced from the same plan's
    resources, with only what `ha` changes changed)."""
    import copy

    from ..gitops.apps.ha import ha_shape

    other = cfg.model_copy(update={"ha": not cfg.ha})
    shapes: dict[str, Any] = {}
    for c in (cfg, other):
        shapes["ha" if c.ha else "standard"] = {
            "sql_availability": c.sql_availability_effective,
            "zenml_replicas": ha_shape(c)["zenml"],
            "mlflow_replicas": ha_shape(c)["mlflow"],
            "pod_disruption_budgets": sum(1 for v in ha_shape(c).values() if v > 1),
        }
    out: dict[str, Any] = {"current": "ha" if cfg.ha else "standard", **shapes}
    cost = (plan or {}).get("cost")
    if plan is None or prices is None or not cost:
        return out
    from ..estimate.cost import estimate_cost
    from ..gitops.render import render
    from ..outputs import InfraOutputs

    resources = copy.deepcopy(plan["resources"])
    for r in resources:
        if r["type"] == "gcp:sql/databaseInstance:DatabaseInstance":
            r["inputs"].setdefault("settings", {})["availabilityType"] = (
                other.sql_availability_effective
            )
    outputs = InfraOutputs.from_mapping(plan["outputs"], source="the plan's outputs")
    other_cost = estimate_cost(other, resources, render(other, outputs), prices)
    out[out["current"]]["monthly_cost"] = cost.get("monthly_total")
    out["ha" if other.ha else "standard"]["monthly_cost"] = other_cost.get("monthly_total")
    out["currency"] = cost.get("currency")
    a, b = out["standard"]["monthly_cost"], out["ha"]["monthly_cost"]
    out["monthly_difference"] = round(b - a, 2) if a is not None and b is not None else None
    # with unpriced lines the difference counts the priced ones only
    out["partial"] = bool(cost.get("partial") or other_cost.get("partial"))
    return out


def _print_ha(diff: dict[str, Any]) -> None:
    from rich.table import Table

    from ..ui import console

    table = Table(
        title="Shapes (`--ha` / `ha: true`)", box=None, pad_edge=False, header_style="bold"
    )
    table.add_column("")
    for key in ("standard", "ha"):
        table.add_column(key + (" (this plan)" if diff["current"] == key else ""))
    for row in ("sql_availability", "zenml_replicas", "mlflow_replicas", "pod_disruption_budgets"):
        table.add_row(row.replace("_", " "), str(diff["standard"][row]), str(diff["ha"][row]))
    if "monthly_difference" in diff:
        cur = diff.get("currency") or ""
        table.add_row(
            "monthly cost",
            _money(diff["standard"].get("monthly_cost"), cur),
            _money(diff["ha"].get("monthly_cost"), cur),
        )
    console().print()
    console().print(table)
    if diff.get("monthly_difference") is not None:
        console().print(
            f"  ha costs {_money(diff['monthly_difference'], diff.get('currency') or '')} "
            "more a month (same estimate assumptions"
            + (
                "; priced lines only: some have no price in this region)"
                if diff.get("partial")
                else ")"
            )
        )


def _render_dns(plan: dict[str, Any]) -> None:
    from rich.markup import escape

    from ..ui import console

    cfg, outputs = plan["config"], plan["outputs"]
    zone = outputs.get("dns_zone")
    if not zone:
        if cfg.get("domain"):
            console().print(
                "\n[bold]DNS[/bold]: create A records for the two hostnames at your DNS "
                "provider, pointing at the static IP (or pass --dns-zone / --create-dns-zone)"
            )
        return
    records = [r for r in plan["resources"] if r["type"] == "gcp:dns/recordSet:RecordSet"]
    con = console()
    made = "created by the stack" if cfg.get("create_dns_zone") else "existing, never modified"
    con.print(f"\n[bold]DNS[/bold]: Cloud DNS zone [cyan]{escape(str(zone))}[/cyan] ({made})")
    for r in records:
        i = r["inputs"]
        con.print(
            f"  {i.get('type')} {escape(str(i.get('name')))} ttl {int(i.get('ttl') or 0)} -> static IP"
        )
    if outputs.get("dns_name_servers"):
        con.print(
            "  after deploy, set the domain's NS records at your registrar to the zone's name "
            "servers (placeholders offline: " + escape(", ".join(outputs["dns_name_servers"])) + ")"
        )
    challenge = cfg.get("acme_challenge", "http01")
    con.print(
        f"  certificates: ACME {challenge}"
        + (
            " through Cloud DNS (own account, dns.admin on this zone only)"
            if challenge == "dns01"
            else ""
        )
    )


def _money(value: float | None, currency: str) -> str:
    return "not priced" if value is None else f"{value:,.2f} {currency}"


def render_estimate(est: dict[str, Any]) -> None:
    """The monthly cost lines, assumptions, and the first-deploy duration with its critical path."""
    from rich.markup import escape
    from rich.table import Table

    from ..ui import console

    con = console()
    cost = est.get("cost")
    if cost:
        cur = cost["currency"]
        con.print()
        total = cost["monthly_total"]
        head = f"[bold]Monthly cost estimate[/bold] ({cur}, prices: {escape(cost['source'])}, as of {cost['as_of']})"
        con.print(head)
        if cost.get("unavailable"):
            con.print(f"  [yellow]{escape(cost['unavailable'])}[/yellow]")
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        table.add_column("item")
        table.add_column("quantity")
        table.add_column("per month", justify="right")
        table.add_column("paused", justify="right")  # `pause`: estimate/paused.py
        for line in cost["lines"]:
            if cost.get("unavailable"):
                table.add_row(escape(line["item"]), escape(line["quantity"]), "—", "—")
                continue
            value = _money(line["monthly"], cur)
            paused = _money(line.get("paused_monthly"), cur)
            table.add_row(escape(line["item"]), escape(line["quantity"]), value, paused)
        con.print(table)
        for line in cost["lines"]:
            if line["monthly"] is None and line.get("note") and not cost.get("unavailable"):
                con.print(f"  [yellow]{escape(line['item'])}[/yellow]: {escape(line['note'])}")
        if total is not None and not cost.get("unavailable"):
            partial = (
                ""
                if cost["complete"]
                else f" (partial: without {escape(', '.join(cost.get('unpriced') or []))})"
            )
            con.print(f"  [bold]total ≈ {_money(total, cur)}[/bold]{partial}")
            if cost.get("paused_note"):
                paused_total = _money(cost.get("paused_total"), cur)
                con.print(f"  paused ≈ {paused_total}: {escape(cost['paused_note'])}")
        sources = sorted(
            {(f["source"], f["as_of"]) for ln in cost["lines"] for f in ln.get("figures", [])}
        )
        if sources:
            con.print("  price sources (as of):")
            for src, as_of in sources:
                con.print(f"    - {escape(src)} [dim]({as_of})[/dim]")
        con.print("  assumptions (setting that changes each):")
        for a in cost["assumptions"]:
            con.print(
                f"    - {escape(a['assumption'])}: {escape(a['value'])} [dim]({escape(a['setting'])})[/dim]"
            )
    dur = est.get("duration")
    if dur:
        _render_duration(con, dur)


def _render_duration(con: Any, dur: dict[str, Any]) -> None:
    from rich.markup import escape

    from ..estimate.durations import fmt_duration

    first = dur["first_deploy"]
    con.print()
    con.print(
        f"[bold]First deploy[/bold] ≈ {fmt_duration(first['min_s'])} - "
        f"{fmt_duration(first['max_s'])} wall clock"
    )
    if dur.get("measured"):
        con.print(
            f"  [dim]durations measured by the last deploy where recorded: {escape(dur['measured'])}[/dim]"
        )
    con.print(
        "  "
        + " · ".join(
            f"{p['phase']} {fmt_duration(p['min_s'])}-{fmt_duration(p['max_s'])}"
            for p in dur["phases"]
        )
    )
    order = (
        "gitops starts when its inputs exist" if dur.get("overlap") else "phases one after another"
    )
    con.print(f"  critical path ({order}; the longest path through the deploy's steps):")
    for step in dur["critical_path"]:
        con.print(
            f"    {step['phase']:<9} {_short_type(step['type']):<22} {escape(step['name'][:40]):<20} "
            f"{fmt_duration(step['min_s'])}-{fmt_duration(step['max_s'])}"
        )
        if step["source"].startswith("measured") or "; +" in step["source"]:
            con.print(f"      [dim]{escape(step['source'])}[/dim]")
    for p in dur["phases"]:
        for d in p.get("dns") or []:
            con.print(
                f"  {p['phase']} DNS step {d['step']}: "
                f"{fmt_duration(d['min_s'])}-{fmt_duration(d['max_s'])} "
                f"[dim]({escape(d['source'])})[/dim]"
            )
    con.print("  Argo CD sync waves (one after another; the apps of a wave side by side):")
    for w in dur["sync_waves"]:
        db = " [dim](needs the database)[/dim]" if w.get("needs_database") else ""
        con.print(
            f"    wave {w['wave']}: {escape(', '.join(w['applications']))} "
            f"{fmt_duration(w['min_s'])}-{fmt_duration(w['max_s'])}{db}"
        )


def estimate_for(cfg: DeploymentConfig, pricing: str) -> dict[str, Any]:
    """Cost and duration of the config's plan (for `deploy --dry-run`)."""
    plan = _plan(cfg, pricing)
    return {"cost": plan["cost"], "duration": plan["duration"]}


def _plan(cfg: DeploymentConfig, pricing: str) -> dict[str, Any]:
    from ..estimate.prices import load_prices
    from ..plan import offline_plan

    return offline_plan(cfg, load_prices(cfg.region, pricing))


def show_plan(cfg: DeploymentConfig, output: str, pricing: str = "snapshot") -> None:
    """Compute the offline plan and print it (`plan --offline` and `deploy --offline`).

    With this machine's copy of the deployment record, the durations its last deploy
    measured replace the typical ones (the output says so)."""
    from ..estimate.graph import Measured
    from ..estimate.prices import load_prices
    from ..ops.upgrade import version_changes
    from ..plan import offline_plan
    from ..ui import print_json

    prices = load_prices(cfg.region, pricing)
    record, where = _local_record(cfg)
    plan = offline_plan(cfg, prices, Measured.from_record(record, where))
    changes = version_changes(record, cfg) if record is not None else []
    diff = ha_difference(cfg, plan, prices)
    if output == "json":
        print_json({**plan, "ha": diff, "version_changes": [c.to_dict() for c in changes]})
    else:
        print_version_changes(changes)
        render_text(plan)
        _print_ha(diff)


def _local_record(cfg: DeploymentConfig) -> tuple[Any, str]:
    """This machine's copy of the deployment record, if any (no cloud call)."""
    from ..errors import UserError
    from ..state.record import FileRecordStore, local_record_path

    path = local_record_path(cfg)
    try:
        return FileRecordStore(path).load(), str(path)
    except UserError:
        return None, str(path)


@click.command("plan")
@config_options
@click.option(
    "--offline",
    is_flag=True,
    help="Run the Pulumi program in-process under mocks: no cloud account, credentials or "
    "Pulumi CLI needed.",
)
@click.option(
    "--pricing",
    type=click.Choice(["snapshot", "live"]),
    default="snapshot",
    help="Prices from the snapshot shipped in the package, or live from the Cloud Billing "
    "Catalog API (needs Application Default Credentials) [snapshot].",
)
@output_option
def plan(config: ConfigSource, offline: bool, pricing: str, output: str) -> None:
    """Show every resource a deploy would create, the hostnames, and the ZenML stack.

    \b
    Example:
      zenml-gcp-gitops plan --offline --project my-proj --region europe-west4
      zenml-gcp-gitops plan --offline --config stack.yaml --output json > plan.json

    The JSON document has the keys version, config, resources (urn, type, name,
    camelCase inputs, parent, depends_on), outputs, argocd, zenml_stack, cost (monthly
    estimate) and duration (first deploy, critical path). Secret values appear only as
    "[secret]".
    """
    from ..errors import ConfigError

    if not offline:
        raise ConfigError(
            "plan needs --offline: a live preview against your project is `deploy --dry-run`",
            "add --offline, or run `zenml-gcp-gitops deploy --dry-run`",
        )
    offline_plan_command(config, output, pricing)


def offline_plan_command(config: ConfigSource, output: str, pricing: str) -> None:
    """`plan --offline`, also what `deploy --offline` hands over to."""
    cfg = config.load()
    _print_paused(cfg)
    show_plan(cfg, output, pricing=pricing)


def _recorded_paused(cfg: DeploymentConfig) -> dict[str, Any] | None:
    """The `pause` entry of this machine's copy of the deployment record, if any."""
    from ..errors import UserError
    from ..state.record import FileRecordStore, local_record_path

    try:
        record = FileRecordStore(local_record_path(cfg)).load()
    except UserError:
        return None
    return (record.operations.get("paused") or None) if record is not None else None


def _print_paused(cfg: DeploymentConfig) -> None:
    """A paused deployment says so first (on stderr: `--output json` stays one document)."""
    paused = _recorded_paused(cfg)
    if paused:
        from ..ui import console_err
        from .monitoring_view import paused_line

        console_err().print(paused_line(paused))


COMMANDS: list[click.Command] = [plan]
