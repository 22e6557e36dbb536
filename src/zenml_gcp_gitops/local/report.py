"""What `local up | status | down` print: URLs, credential files, the CI variables. No secrets."""

from __future__ import annotations

from typing import Any

from ..ui import console, print_json, self_command


def print_up(result: dict[str, Any], output: str = "text") -> None:
    if output == "json":
        print_json(result)
        return
    c = console()
    me = self_command()
    creds = result["credentials"]
    verb = "re-checked, nothing changed" if not result["changed"] else "registered"
    c.print(
        f"\n[bold]Local stack [cyan]{result['stack']}[/cyan] {verb}[/bold] "
        f"in {result['total_seconds']:.1f} s."
    )
    c.print(
        f"  ZenML        {result['zenml_url']}   (user admin, password in {creds['zenml_admin']})"
    )
    c.print(
        f"  MLflow       {result['mlflow_url']}   (user admin, password in {creds['mlflow_admin']})"
    )
    b = result["buckets"]
    c.print(
        f"  GCS emulator {result['gcs_emulator_url']}   (buckets {b['artifacts']}, {b['mlflow']})"
    )
    if result.get("registry_url"):
        c.print(f"  OCI registry {result['registry_url']}")
    c.print(f"  Data         {result['dir']}   (database {result['db']})")
    c.print("\nCredentials are in 0600 files; nothing secret is printed:")
    c.print(f"  ZenML admin     {creds['zenml_admin']}")
    c.print(f"  MLflow admin    {creds['mlflow_admin']}")
    c.print(f"  CI API key      {creds['ci_api_key']}")
    c.print("\nA CI job needs two variables:")
    c.print(f"  ZENML_STORE_URL={result['zenml_url']}")
    c.print(f"  ZENML_STORE_API_KEY=<the contents of {creds['ci_api_key']}>")
    c.print(
        "Pipelines on this machine also need the emulator variables; all of them are in\n"
        f"  {result['env_file']}\n"
        f'Load them with:  eval "$({me} local env{_where(result)})"'
    )
    c.print(
        f"\nNext: {me} local run-example{_where(result)}    Stop: {me} local down{_where(result)}"
    )


def _where(result: dict[str, Any]) -> str:
    """The --name/--dir flags a follow-up command needs to find this rehearsal."""
    from shlex import quote

    from .specs import default_dir

    name = result["name"]
    flags = "" if name == "zenml" else f" --name {name}"
    if result["dir"] != str(default_dir(name).resolve()):
        flags += f" --dir {quote(result['dir'])}"
    return flags


def print_status(status: dict[str, Any], output: str = "text") -> None:
    if output == "json":
        print_json(status)
        return
    c = console()
    if not status["exists"]:
        c.print(f"No local rehearsal '{status['name']}' in {status['dir']}.")
        c.print(f"Start one with: {self_command()} local up")
        return
    if not status["services"]:
        c.print(f"Local rehearsal '{status['name']}' is stopped (data kept in {status['dir']}).")
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        title=f"Local rehearsal '{status['name']}' ({status['dir']})", title_justify="left"
    )
    for col in ("service", "url", "pid", "state"):
        table.add_column(col)
    for s in status["services"].values():
        state = (
            "[green]healthy[/]"
            if s["healthy"]
            else "[red]main process gone, workers left[/]"
            if s.get("leftover_pids")
            else ("[yellow]running, not answering[/]" if s["running"] else "[red]stopped[/]")
        )
        table.add_row(s["title"], s["url"], str(s["pid"]), state)
    c.print(table)
    if status.get("stack"):
        c.print(f"Stack: {status['stack']}   Environment: {status.get('env_file')}")
    for s in status["services"].values():
        if s.get("error"):
            c.print(f"[yellow]{s['title']}[/]: {escape(s['error'])}")
        if not s["healthy"]:
            c.print(f"[yellow]{s['title']}[/]: see its log {s['log']}")


def print_down(result: dict[str, Any], output: str = "text") -> None:
    if output == "json":
        print_json(result)
        return
    c = console()
    if result.get("exists") is False:
        c.print(f"No local rehearsal in {result['dir']}: nothing to stop.", markup=False)
        return
    stopped = ", ".join(result["stopped"]) or "nothing was running"
    c.print(f"Stopped: {stopped}.")
    if result["purged"]:
        c.print(f"Removed {result['dir']} (data, credentials, logs).", markup=False)
    else:
        c.print(
            f"Data kept in {result['dir']} "
            f"(`{self_command()} local down --purge{_where(result)}` removes it).",
            markup=False,
        )
