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
    con.print(
        "\n[dim]Offline plan: no cloud calls; computed values are placeholders. "
        "`--output json` prints the full plan.[/dim]"
    )


def show_plan(cfg: DeploymentConfig, output: str) -> None:
    """Compute the offline plan and print it (`plan --offline` and `deploy --offline`)."""
    from ..plan import offline_plan
    from ..ui import print_json

    plan = offline_plan(cfg)
    if output == "json":
        print_json(plan)
    else:
        render_text(plan)


@click.command("plan")
@config_options
@click.option(
    "--offline",
    is_flag=True,
    help="Run the Pulumi program in-process under mocks: no cloud account, credentials or "
    "Pulumi CLI needed.",
)
@output_option
def plan(config: ConfigSource, offline: bool, output: str) -> None:
    """Show every resource a deploy would create, the hostnames, and the ZenML stack.

    \b
    Example:
      zenml-gcp-gitops plan --offline --project my-proj --region europe-west4
      zenml-gcp-gitops plan --offline --config stack.yaml --output json > plan.json

    The JSON document has the keys version, config, resources (urn, type, name,
    camelCase inputs, parent, depends_on), outputs, argocd and zenml_stack. Secret
    values appear only as "[secret]".
    """
    from ..errors import ConfigError

    if not offline:
        raise ConfigError(
            "plan needs --offline: a live preview against your project is `deploy --dry-run`",
            "add --offline, or run `zenml-gcp-gitops deploy --dry-run`",
        )
    show_plan(config.load(), output)


COMMANDS: list[click.Command] = [plan]
