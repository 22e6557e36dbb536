"""How `status` and the deploy summary show the stack's monitoring."""

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
