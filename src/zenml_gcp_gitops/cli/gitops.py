"""gitops commands: `render` (the GitOps tree as plain YAML) and `argocd` (reach the Argo CD UI)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .options import UserPath, config_options, output_option

if TYPE_CHECKING:
    from ..config import DeploymentConfig
    from ..outputs import InfraOutputs


def _outputs(
    cfg: DeploymentConfig, outputs_file: Path | None, offline: bool
) -> tuple[InfraOutputs, str]:
    """The infra outputs: a file, the offline plan's mocks, or the deployment record."""
    from ..errors import ConfigError, UserError
    from ..outputs import InfraOutputs

    if outputs_file is not None and offline:
        raise ConfigError("--outputs and --offline are exclusive", "pass one of them")
    if outputs_file is not None:
        return InfraOutputs.from_file(outputs_file), str(outputs_file)
    if offline:
        from ..plan import offline_outputs

        return offline_outputs(cfg), "the offline plan's mocked outputs"
    from ..state.record import record_store

    store = record_store(cfg)
    record = store.load()
    data = record.recorded_outputs().get("infra", {}).get("outputs") if record else None
    if not data:
        raise UserError(
            f"no deployed infra outputs for '{cfg.name}' in {store.location}",
            "deploy first, or pass --outputs FILE (from `outputs --output json`) or --offline",
        )
    return InfraOutputs.from_mapping(data, source="recorded infra outputs"), store.location


@click.command("render")
@config_options
@click.option(
    "--out",
    "out_dir",
    type=UserPath(file_okay=False, root_ok=False),
    required=True,
    help="Folder to write the GitOps tree to (commit it at --gitops-path of --gitops-repo).",
)
@click.option(
    "--outputs",
    "outputs_file",
    type=UserPath(dir_okay=False),
    help="Infra outputs JSON (`outputs --output json`) instead of the deployment record.",
)
@click.option("--offline", is_flag=True, help="Render from the offline plan's mocked outputs.")
@click.option(
    "--placeholders",
    is_flag=True,
    help="With --offline: accept mocked IPs and CA in the files (each is marked as such).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Overwrite files in the way that render did not write (or that were changed since).",
)
@output_option
def render_cmd(
    config: Any,
    out_dir: Path,
    outputs_file: Path | None,
    offline: bool,
    placeholders: bool,
    force: bool,
    output: str,
) -> None:
    """Write the whole GitOps tree (project, root app, child apps, values, ExternalSecrets)
    as plain YAML, so a team can commit it to its own repo.

    \b
    Then deploy with --gitops-repo URL [--gitops-path P] to make the root app track it:
    later changes go through Git. The tree holds no secret value.

    Only files render wrote before (listed with their hashes in .zenml-gcp-gitops.json) are
    replaced or removed; anything else in the way stops the command unless --force.
    """
    from ..errors import ConfigError
    from ..gitops.render import render
    from ..gitops.tree import write_tree
    from ..ui import console, print_json

    if offline and not placeholders and outputs_file is None:
        raise ConfigError(
            "--offline fills the tree with placeholder values (documentation IPs, a mock CA) "
            "that must not be committed",
            "render from a deployment (or --outputs FILE), or add --placeholders to get a "
            "tree marked as not deployable",
        )
    cfg = config.load()
    outputs, source = _outputs(cfg, outputs_file, offline)
    rendered = render(cfg, outputs)
    result = write_tree(rendered, out_dir, force=force)
    files = result.written
    if output == "json":
        print_json(
            {
                "out": str(out_dir),
                "files": sorted(str(p.relative_to(out_dir)) for p in files),
                "removed": sorted(str(p.relative_to(out_dir)) for p in result.removed),
                "kept": sorted(str(p.relative_to(out_dir)) for p in result.kept),
                "applications": [a.name for a in rendered.apps],
                "source": source,
            }
        )
        return
    console().print(f"Rendered {len(files)} files for '{cfg.name}' into {out_dir} (from {source})")
    for app in rendered.apps:
        console().print(f"  wave {app.wave}  {app.name}")
    for p in result.kept:
        console().print(f"[yellow]kept {p}: no longer rendered, but changed since[/yellow]")
    if not cfg.gitops_repo:
        console().print(
            "[dim]Without --gitops-repo the apps carry their objects inline; render with "
            "--gitops-repo URL to get a tree whose apps point at your repo.[/dim]"
        )


@click.command("argocd")
@config_options
@click.option("--port", default=8080, show_default=True, help="Local port for the Argo CD UI.")
@click.option(
    "--show-password", is_flag=True, help="Print the initial admin password (read on demand)."
)
@click.option(
    "--no-forward", is_flag=True, help="Only print the login details; do not port-forward."
)
@click.option(
    "--write-kubeconfig",
    is_flag=True,
    help="Also add a kubectl context for the cluster to ~/.kube/config.",
)
def argocd_cmd(
    config: Any, port: int, show_password: bool, no_forward: bool, write_kubeconfig: bool
) -> None:
    """Reach Argo CD: a port-forward to its ClusterIP server plus the admin login.

    Argo CD is never exposed publicly. This forwards https://localhost:PORT to the
    argocd-server Service until Ctrl-C. The admin password is read from the cluster only
    with --show-password and is never stored.
    """
    from ..errors import UserError
    from ..gitops.argocd_access import admin_password, port_forward
    from ..gitops.kube import connect
    from ..outputs import InfraOutputs
    from ..state.record import record_store
    from ..ui import console

    cfg = config.load()
    store = record_store(cfg)
    record = store.load()
    data = record.recorded_outputs().get("infra", {}).get("outputs") if record else None
    if not data:
        raise UserError(
            f"no deployed cluster recorded for '{cfg.name}' in {store.location}", "deploy first"
        )
    kube = connect(InfraOutputs.from_mapping(data), write_kubeconfig_file=write_kubeconfig)
    ns = cfg.names.namespaces["argocd"]
    console().print("Argo CD user: admin")
    if show_password:
        console().print(f"Argo CD password: {admin_password(kube, ns)}")
    else:
        console().print(
            "[dim]Password: re-run with --show-password (read from the cluster, not stored)[/dim]"
        )
    if no_forward:
        return
    port_forward(
        kube,
        ns,
        local_port=port,
        announce=lambda url: console().print(f"Argo CD UI: {url}  (Ctrl-C to stop)"),
    )


COMMANDS: list[click.Command] = [render_cmd, argocd_cmd]
