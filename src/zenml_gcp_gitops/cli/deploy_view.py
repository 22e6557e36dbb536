"""What `deploy` and `status` print on a terminal (their JSON documents are the data itself)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import DeploymentConfig


def print_status(cfg: DeploymentConfig, data: dict[str, Any]) -> None:
    """`status`: each phase's last result, the infra outputs and the live checks."""
    from rich.markup import escape
    from rich.table import Table

    from ..ui import console

    c = console()
    if not data["deployed"]:
        c.print(
            f"No deployment '{escape(cfg.name)}' recorded at {escape(data['record'])}. Run `zenml-gcp-gitops deploy`."
        )
        return
    table = Table(title=f"Deployment {cfg.name} ({cfg.project})")
    for col in ("phase", "status", "finished", "live", "error"):
        table.add_column(col)
    for name, p in data["phases"].items():
        live = p.get("live")
        live_s = (
            ""
            if live is None
            else (
                "ok"
                if live.get("reachable", True) and not live.get("error")
                else escape(str(live.get("error", "unreachable")))
            )
        )
        color = {"succeeded": "green", "failed": "red", "interrupted": "yellow"}.get(
            p["status"], "dim"
        )
        table.add_row(
            name,
            f"[{color}]{p['status']}[/{color}]",
            escape(p.get("finished_at") or ""),
            live_s,
            escape(_short(p.get("error"))),
        )
    c.print(table)
    if data.get("paused"):
        from .monitoring_view import paused_line

        c.print(paused_line(data["paused"]))
    for k, v in (data.get("infra") or {}).items():
        if v:
            c.print(f"  {k}: {escape(str(v))}")
    if data.get("monitoring"):
        from .monitoring_view import print_monitoring

        print_monitoring(c, data["monitoring"])
    if data.get("durations"):
        _print_durations(data["durations"])
    _print_pipeline_install(data.get("pipeline_environment") or [])


def print_deploy_summary(summary: dict[str, Any]) -> None:
    from rich.markup import escape

    from ..ui import console

    c = console()
    if summary.get("dry_run"):
        preview = summary.get("preview") or {}
        c.print(f"[bold]Dry run[/bold] of {escape(summary['deployment'])}: nothing was changed.")
        state = summary.get("state") or {}
        if state.get("state_bucket_action"):
            c.print(
                f"State bucket gs://{escape(str(state.get('state_bucket')))}: {state['state_bucket_action']}"
            )
        if state.get("state_kms_key_action"):
            c.print(
                f"State key {escape(str(state.get('state_kms_key')))}: {state['state_kms_key_action']}"
            )
        if preview:
            counts = {k: v for k, v in preview.items() if isinstance(v, int)}
            c.print(
                "Pulumi preview: "
                + ", ".join(f"{v} to {k}" for k, v in counts.items() if k != "same")
                + f" ({counts.get('same', 0)} unchanged)"
            )
            _print_stateful(preview.get("stateful") or [])
        if summary.get("estimate"):
            from .plan import render_estimate

            render_estimate(summary["estimate"])
        return
    c.print(f"[green]Deployment {escape(summary['deployment'])} is up to date.[/green]")
    out = summary.get("outputs") or {}
    if out.get("zenml_host"):
        c.print(f"  ZenML:   https://{escape(out['zenml_host'])}")
        c.print(f"  MLflow:  https://{escape(out['mlflow_host'])}")
    if out.get("cluster_name"):
        c.print(
            f"  Cluster: {escape(out['cluster_name'])} ({escape(out.get('cluster_location', ''))})"
        )
    if out.get("registry_uri"):
        c.print(f"  Images:  {escape(out['registry_uri'])}")
    if out.get("dashboard_url"):
        who = out.get("alerts_notify")
        c.print(f"  Health:  {escape(out['dashboard_url'])}")
        c.print(f"  Alerts:  {escape(who) if who else 'nobody is notified (set alert_email)'}")
    if out.get("dns_name_servers"):
        c.print(
            "  DNS:     set these NS records for your domain at its registrar: "
            + escape(", ".join(str(ns).rstrip(".") for ns in out["dns_name_servers"]))
        )
    c.print(f"  Record:  {escape(summary['record'])}")
    from ..ui import self_command

    c.print(
        f"Next: `{escape(self_command())} status` shows every part; `zenml stack set "
        + escape(summary["deployment"])
        + "` uses it."
    )
    _print_pipeline_install(summary.get("pipeline_environment") or [])


def _print_stateful(changes: list[dict[str, Any]]) -> None:
    """The stateful resources the preview would replace or delete, before anything runs."""
    from rich.markup import escape

    from ..ui import console

    c = console()
    for ch in changes:
        where = f" ({ch['cloud_name']})" if ch.get("cloud_name") else ""
        text = escape(f"{ch['action']} {ch['resource']}{where}")
        if ch.get("blocked"):
            c.print(
                f"[red]Would {text}: its data is lost; deploy stops without "
                f"--allow-replace {escape(ch['resource'])}[/red]"
            )
        else:
            c.print(f"[yellow]Would {text} (allowed by --allow-replace)[/yellow]")


def _short(text: str | None, width: int = 90) -> str:
    text = (text or "").splitlines()[0] if text else ""
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_pipeline_install(lines: list[str]) -> None:
    """What every environment that runs pipelines on the stack installs (CI, laptops)."""
    from rich.markup import escape

    from ..ui import console

    if lines:
        console().print("A pipeline environment (CI job, laptop) installs:")
        for line in lines:
            console().print(f"  {escape(line)}", soft_wrap=True)


def _print_durations(rows: list[dict[str, Any]]) -> None:
    """Real creation times of the last deploy against the estimate's table."""
    from rich.table import Table

    from ..estimate.durations import fmt_duration
    from ..ui import console

    table = Table(title="Resource creation times: last deploy vs the estimate")
    for col in ("type", "count", "mean", "longest", "estimate", ""):
        table.add_column(col)
    for r in rows:
        mark = {"slower": "[red]slower[/red]", "faster": "[yellow]faster[/yellow]"}.get(
            r["verdict"], "[green]within[/green]"
        )
        table.add_row(
            r["type"].rsplit(":", 1)[-1],
            str(r["count"]),
            fmt_duration(float(r["mean_s"] or 0)),
            fmt_duration(r["max_s"]),
            f"{fmt_duration(r['estimate_min_s'])}-{fmt_duration(r['estimate_max_s'])}",
            mark,
        )
    console().print(table)
