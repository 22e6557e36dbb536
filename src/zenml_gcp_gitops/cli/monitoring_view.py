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
    state = "resuming" if entry.get("resuming") else f"paused ({entry.get('stage', 'servers')})"
    if entry.get("stage") == "done" and not entry.get("resuming"):
        state = "paused"
    return (
        f"[yellow]{state}[/yellow] since {escape(str(entry.get('at')))} by "
        f"{escape(str(entry.get('by')))}: the servers, operators, Argo CD and Cloud SQL are "
        "stopped, the uptime checks removed and the alerts disabled; "
        "`zenml-gcp-gitops resume` starts them"
    )
