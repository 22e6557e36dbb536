"""deploy, status, destroy, outputs, unlock: the deploy engine's commands.

`zenml stack deploy gcp-gitops ...` is dispatched to `deploy` here by the ZenML hook.
Each command only parses its flags into `RunOptions`, calls the engine and renders the
result; the length is the commands' flags and help, not logic.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import click

from ..phases import PHASE_ORDER
from .options import ConfigSource, config_options, credentials_from_env_option, output_option

if TYPE_CHECKING:
    from ..config import DeploymentConfig
    from ..engine import Engine
    from ..run_options import RunOptions

PHASES = PHASE_ORDER


def _make_engine(cfg: DeploymentConfig, options: RunOptions | None = None) -> Engine:
    """The one place commands build an engine (tests replace it to inject fakes)."""
    from ..engine import Engine
    from ..progress import make_reporter
    from ..run_options import RunOptions

    options = options or RunOptions()
    return Engine(cfg, options=options, reporter=make_reporter(verbose=options.verbose))


def _require_credentials(cfg: DeploymentConfig, engine: Engine) -> None:
    """The credential check, before anything reaches for a gs:// backend."""
    if cfg.is_local_backend or engine.services.storage_client is not None:
        return
    from ..gcp.api import GcpApi

    GcpApi(cfg).credentials()


def _json_error(e: Exception, extra: dict[str, Any] | None = None) -> None:
    from ..ui import print_json

    code = 130 if isinstance(e, KeyboardInterrupt) else getattr(e, "exit_code", 1)
    data: dict[str, Any] = {
        "ok": False,
        "error": getattr(e, "message", str(e)),
        "exit_code": code,  # the same document shape as every other command's error
    }
    hint = getattr(e, "hint", None)
    if hint:
        data["hint"] = hint
    print_json({**data, **(extra or {})})


def _record_phases(engine: Engine) -> dict[str, Any]:
    try:
        rec = engine.load_record()
    except Exception:  # noqa: BLE001 - the record only decorates an error already being reported
        return {}
    if rec is None:
        return {}
    return {k: {"status": v.status, "error": v.error} for k, v in rec.phases.items()}


@click.command("deploy")
@config_options
@click.option("--stop-after", type=click.Choice(PHASES), help="Stop after this phase.")
@click.option(
    "--from-phase",
    type=click.Choice(PHASES),
    help="Re-run from this phase (earlier phases' recorded outputs are reused).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Preflight checks plus a Pulumi preview (creates/updates/replaces/deletes). Nothing changes.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not prompt (e.g. to install the Pulumi CLI).")
@click.option("--verbose", "-v", is_flag=True, help="Stream the Pulumi engine log.")
@click.option("--offline", is_flag=True, help="Only show the offline plan (no cloud calls).")
@click.option(
    "--write-kubeconfig",
    is_flag=True,
    help="Also write the cluster's kubeconfig to ~/.kube (by default it stays in memory).",
)
@click.option(
    "--adopt",
    is_flag=True,
    help="Take over ZenML components of the same name that this tool did not create.",
)
@click.option(
    "--rotate-ci-key", is_flag=True, help="Issue a new CI API key (the old one stays valid 60 min)."
)
@credentials_from_env_option
@click.option(
    "--local",
    "local",
    is_flag=True,
    help="Run the local rehearsal instead (no GCP; needs no --project/--region).",
)
@click.option(
    "--skip-dns-wait",
    is_flag=True,
    help="With Cloud DNS, do not wait for public resolution of the records before the apps.",
)
@click.option(
    "--pricing",
    type=click.Choice(["snapshot", "live"]),
    default="snapshot",
    help="With --dry-run/--offline: prices from the shipped snapshot, or live from the Cloud "
    "Billing Catalog API (needs credentials).",
)
@click.option(
    "--allow-replace",
    "allow_replace",
    multiple=True,
    metavar="TYPE:NAME",
    help="Let deploy replace or delete this stateful resource (SQL instance, bucket, image "
    "repository, secret, KMS key), losing its data; as named by the refusal. Repeatable; "
    "`all` allows every one.",
)
@click.option(
    "--skip-backup",
    is_flag=True,
    help="Upgrade ZenML or MLflow without the backup that is otherwise taken first.",
)
@click.option(
    "--allow-downgrade",
    is_flag=True,
    help="Allow an older ZenML server than the deployed one (its migrations are one-way).",
)
@click.option("--resume", is_flag=True, help="Resume a paused stack first (see `resume`).")
@click.option(
    "--overlap/--no-overlap",
    default=True,
    help="Start Argo CD and the apps that need no database while infra still creates Cloud "
    "SQL [on; not with a GitOps repo]. --no-overlap runs infra, then gitops.",
)
@output_option
def deploy(
    config: ConfigSource,
    stop_after: str | None,
    from_phase: str | None,
    dry_run: bool,
    yes: bool,
    verbose: bool,
    offline: bool,
    write_kubeconfig: bool,
    adopt: bool,
    rotate_ci_key: bool,
    credentials_from_env: bool,
    local: bool,
    skip_dns_wait: bool,
    pricing: str,
    allow_replace: tuple[str, ...],
    output: str,
    skip_backup: bool = False,
    allow_downgrade: bool = False,
    resume: bool = False,
    overlap: bool = True,
) -> None:
    """Deploy (or converge) the stack: preflight -> infra -> gitops -> register -> ci.

    \b
    Re-running converges: no duplicates, fast when nothing changed. After a failure or
    Ctrl-C, re-running resumes at the phase that did not finish.
    \b
    Examples:
      zenml-gcp-gitops deploy --project my-proj --region europe-west4
      zenml-gcp-gitops deploy --project my-proj --region europe-west4 --dry-run
      zenml-gcp-gitops deploy --config deploy.yaml --from-phase gitops -y
    """
    if offline or local:
        _hand_over(config, offline=offline, local=local, output=output, pricing=pricing)
        return
    from ..run_options import RunOptions
    from ..state.replace_guard import parse_allow

    options = RunOptions(
        allow_replace=parse_allow(allow_replace),
        skip_dns_wait=skip_dns_wait,
        yes=yes,
        verbose=verbose,
        write_kubeconfig=write_kubeconfig,
        adopt=adopt,
        rotate=rotate_ci_key,
        skip_backup=skip_backup,
        allow_downgrade=allow_downgrade,
        credentials_from_env=credentials_from_env,
        overlap=overlap,
    )
    _run_deploy(config, options, from_phase, stop_after, dry_run, pricing, output, resume)


def _hand_over(
    config: ConfigSource, *, offline: bool, local: bool, output: str, pricing: str
) -> None:
    """`deploy --offline` is `plan --offline` and `deploy --local` is `local up`: nothing of
    deploy's own runs first."""
    from ..errors import ConfigError

    if offline and local:
        raise ConfigError(
            "--offline and --local cannot be combined",
            "--offline shows the cloud plan; --local runs the rehearsal on this machine",
        )
    if offline:
        from .plan import offline_plan_command

        offline_plan_command(config, output, pricing)
        return
    given = [k for k, v in config.overrides.items() if k != "name" and v not in (None, ())]
    if given:
        flag = {"authorized_networks": "--authorized-network", "versions": "a version flag"}
        shown = flag.get(given[0], "--" + given[0].replace("_", "-"))
        raise ConfigError(
            f"--local and {shown} cannot be combined: the rehearsal runs on this machine "
            "and takes only --name",
            "drop the flag, or deploy to GCP without --local",
        )
    from ..local import run_local_up

    run_local_up(name=_local_name(config), data_dir=None, db_url=None, output=output)


def _run_deploy(
    config: ConfigSource,
    options: RunOptions,
    from_phase: str | None,
    stop_after: str | None,
    dry_run: bool,
    pricing: str,
    output: str,
    resume: bool = False,
) -> None:
    from ..errors import ConfigError, UserError

    try:
        cfg = config.load()
    except ConfigError as e:
        if e.message.startswith(("project: is required", "region: is required")):
            raise ConfigError(
                "deploy needs --project and --region (or --config FILE with both)",
                "or run `zenml-gcp-gitops deploy --local` to rehearse on this machine "
                "without a cloud account",
            ) from None
        raise
    _refuse_placeholder_tree(cfg)
    engine = _make_engine(cfg, options)
    if output != "json":
        _show_version_changes(engine)
    try:
        summary = engine.deploy(
            from_phase=from_phase, stop_after=stop_after, dry_run=dry_run, resume=resume
        )
    except UserError as e:
        if output == "json":
            _json_error(e, {"phases": _record_phases(engine)})
        raise
    if dry_run:
        from .plan import estimate_for

        summary["estimate"] = estimate_for(cfg, pricing)
    if output == "json":
        from ..ui import print_json

        print_json({"ok": True, **summary})
        return
    from ..extras import pipeline_install

    summary["pipeline_environment"] = pipeline_install(cfg.orchestrator, cfg.versions.zenml_chart)
    from .deploy_view import print_deploy_summary

    print_deploy_summary(summary)


def _show_version_changes(engine: Engine) -> None:
    """Before anything happens: what this deploy changes, deployed version -> new version."""
    from ..ops.upgrade import version_changes
    from .plan import print_version_changes

    try:
        record = engine.load_record()
    except Exception:  # noqa: BLE001 - the engine reports an unreadable record itself
        return
    print_version_changes(version_changes(record, engine.cfg))


def _refuse_placeholder_tree(cfg: DeploymentConfig) -> None:
    """`deploy --gitops-repo` from a checkout whose tree still has `render --offline` values."""
    from pathlib import Path

    from ..errors import ConfigError
    from ..gitops.tree import placeholder_files

    tree = Path.cwd() / cfg.gitops_path
    if not cfg.gitops_repo or not tree.is_dir():
        return
    marked = placeholder_files(tree)
    if marked:
        more = f" (and {len(marked) - 1} more files)" if len(marked) > 1 else ""
        raise ConfigError(
            f"{marked[0]}{more} still holds placeholder values from "
            "`render --offline`; Argo CD would deploy them",
            "render from the deployment (`zenml-gcp-gitops render --out ...` after infra, or "
            "--outputs FILE), commit that, then deploy",
        )


def _local_name(config: ConfigSource) -> str:
    """`--local` needs only the deployment name: from --name, else the config file, else zenml."""
    from ..config import DeploymentConfig
    from ..config_file import load_yaml

    name = config.overrides.get("name")
    if name is None and config.file is not None:
        name = load_yaml(config.file).get("name")
    return str(name or DeploymentConfig.model_fields["name"].default)


@click.command("status")
@config_options
@click.option("--no-live", is_flag=True, help="Only the recorded results; no live checks.")
@output_option
def status(config: ConfigSource, no_live: bool, output: str) -> None:
    """Each phase's last result, the infra outputs, and a live check of each part."""
    cfg = config.load()
    engine = _make_engine(cfg)
    data = engine.status(live=not no_live)
    if output == "json":
        from ..ui import print_json

        print_json(data)
        return
    from .deploy_view import print_status

    print_status(cfg, data)


@click.command("destroy")
@config_options
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--force",
    is_flag=True,
    help="Lift deletion protection (GKE, Cloud SQL, buckets) in one update, then delete them.",
)
@click.option(
    "--purge-state", is_flag=True, help="Also delete the state bucket and the state key's versions."
)
@click.option("--verbose", "-v", is_flag=True, help="Stream the Pulumi engine log.")
@click.option(
    "--adopt",
    is_flag=True,
    help="Also delete the same-named ZenML secret this tool did not create (left by default).",
)
@output_option
def destroy(
    config: ConfigSource,
    yes: bool,
    force: bool,
    purge_state: bool,
    verbose: bool,
    output: str,
    adopt: bool = False,
) -> None:
    """Tear down in reverse: ci -> register -> gitops (apps, LBs, disks) -> pulumi destroy.

    Resumable: re-running continues where a failed or interrupted destroy stopped.
    """
    from ..errors import UserError
    from ..ui import is_interactive

    cfg = config.load()
    if not yes:
        if not is_interactive():
            raise UserError(
                "destroy deletes the whole deployment and needs confirmation", "pass --yes"
            )
        extra = " Deletion protection will be lifted (--force)." if force else ""
        click.confirm(
            f"Destroy deployment '{cfg.name}' in project {cfg.project}? Its data is lost.{extra}",
            abort=True,
        )
    from ..run_options import RunOptions

    engine = _make_engine(
        cfg,
        RunOptions(yes=yes, force=force, purge_state=purge_state, verbose=verbose, adopt=adopt),
    )
    try:
        summary = engine.destroy()
    except UserError as e:
        if output == "json":
            _json_error(e)
        raise
    if output == "json":
        from ..ui import print_json

        print_json({"ok": True, **summary})
        return
    from ..ui import console

    console().print(
        f"[green]Deployment {cfg.name} destroyed.[/green]"
        + (
            ""
            if purge_state
            else " The state bucket and key are kept (--purge-state removes them)."
        )
    )


@click.command("outputs")
@config_options
@click.option("--show-secrets", is_flag=True, help="Print secret outputs in plain text.")
@output_option
def outputs(config: ConfigSource, show_secrets: bool, output: str) -> None:
    """Print the infra stack's outputs (secret values only with --show-secrets)."""
    from ..config import SECRET_MARK
    from ..infra.stack import stack_outputs

    cfg = config.load()
    engine = _make_engine(cfg)
    _require_credentials(cfg, engine)
    values = stack_outputs(cfg, engine.options, engine.services)
    data = {
        k: (v.value if (show_secrets or not v.secret) else SECRET_MARK)
        for k, v in sorted(values.items())
    }
    if output == "json":
        from ..ui import print_json

        print_json(data)
        return
    from rich.markup import escape

    from ..ui import console

    for k, v in data.items():
        console().print(f"{k}: {escape(str(v))}")


@click.command("unlock")
@config_options
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def unlock(config: ConfigSource, yes: bool) -> None:
    """Remove the deploy lease and the Pulumi state lock left by a crashed or killed run.

    Only run this when no deploy or destroy of this deployment is running (a run still
    alive on this host is detected and refused).
    """
    from ..errors import UserError
    from ..infra.stack import find_locks
    from ..state.lease import leftover_leases
    from ..state.record import make_lease
    from ..ui import console, is_interactive

    cfg = config.load()
    engine = _make_engine(cfg)
    _require_credentials(cfg, engine)
    leases = leftover_leases(make_lease(cfg, engine.store))
    pulumi_locks = find_locks(cfg, engine.services.storage_client)
    locks: list[Any] = [
        *pulumi_locks,
        *(
            SimpleNamespace(
                location=where, holder=h.describe() if h else "unknown holder", delete=rm
            )
            for where, h, rm in leases
        ),
    ]
    if not locks:
        console().print(f"No lock on stack {cfg.names.pulumi_stack} in {cfg.state_url}.")
        return
    for lock in locks:
        console().print(
            f"Lock {lock.location}: held by {lock.holder}", highlight=False, markup=False
        )
    if not yes:
        if not is_interactive():
            raise UserError(
                "unlock needs confirmation", "make sure no deploy is running, then pass --yes"
            )
        click.confirm("Remove these locks? Only do this when no deploy is running.", abort=True)
    for lock in locks:
        lock.delete()
    console().print(f"Removed {len(locks)} lock(s). Re-run `zenml-gcp-gitops deploy` to resume.")


COMMANDS: list[click.Command] = [deploy, status, destroy, outputs, unlock]
