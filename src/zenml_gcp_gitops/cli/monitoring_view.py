"""How `status` and the deploy summary show the stack's monitoring, and a paused stack."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape


def print_monitoring(c: Console, mon: dict[str, Any]) -> None:
    who = mon.get("notified")
    c.print(
        "  alerts: "
        + (escape(who) if who else "[yellow]nobody is notified[/yellow] (set alert_email)")
    )
    if mon.get("dashboard"):
        c.print(f"  dashboard: {escape(mon['dashboard'])}")
    if mon.get("off"):
        c.print(f"  monitoring: [yellow]{escape(mon['off'])}[/yellow]")
    for key, u in (mon.get("uptime") or {}).items():
        detail = u.get("error") or (
            f"{u['passed']}/{u['probes']} regions at {u['at']}" if u.get("probes") else ""
        )
        c.print(f"  uptime {key}: {escape(u['state'])} {escape(detail)}".rstrip())


def paused_line(entry: dict[str, Any]) -> str:
    """The `pause` entry of the record, for `status`, `plan` and `pause` itself."""
    since = f"since {escape(str(entry.get('at')))} by {escape(str(entry.get('by')))}"
    if entry.get("resuming"):
        return f"[yellow]resume unfinished[/yellow] ({since}): run `zenml-gcp-gitops resume`"
    if entry.get("stage") != "done":
        return (
            f"[yellow]pause unfinished[/yellow] at {escape(str(entry.get('stage')))} ({since}): "
            "run `zenml-gcp-gitops pause` to finish it, or `resume`"
        )
    return (
        f"[yellow]paused[/yellow] {since}: the servers, operators, Argo CD and Cloud SQL are "
        "stopped, the uptime checks removed and the alerts disabled; "
        "`zenml-gcp-gitops resume` starts them"
    )
