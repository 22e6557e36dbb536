"""local commands: `local up | down | status | env`, the stack on loopback with real services."""

from __future__ import annotations

from pathlib import Path

import click

from ..ui import remember_output

_CHOICE = click.Choice


def _check_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from ..names import LocalNames

    LocalNames(value)  # a DNS label: never `..`, `/` or empty, so never outside local/
    return value


def _common(func: click.decorators.FC) -> click.decorators.FC:
    from .options import UserPath

    func = click.option(
        "--dir", "data_dir", type=UserPath(file_okay=False, root_ok=False),
        help="Data dir [user data dir/local/NAME].",
    )(func)  # fmt: skip
    return click.option(
        "--name", default="zenml", show_default=True, callback=_check_name,
        help="Deployment name.",
    )(func)  # fmt: skip


def _output(func: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--output", "-o", "output", type=_CHOICE(["text", "json"]), default="text",
        callback=remember_output, help="`json` prints one machine-readable document on stdout.",
    )(func)  # fmt: skip


@click.group("local")
def local() -> None:
    """Rehearse the stack on this machine: ZenML, MLflow and a GCS emulator on loopback.

    \b
    Registered by the same code as on GCP, no cloud account needed. It differs from the GCP
    stack: local orchestrator and image builder, no service connector (docs/local.md).
      zenml-gcp-gitops local up            # start, register <name>-local, print how to use it
      eval "$(zenml-gcp-gitops local env)" # the pipeline environment
      zenml-gcp-gitops local down          # stop (data kept; --purge removes it)
    """


@local.command("up")
@_common
@click.option(
    "--db", "db_url", envvar="ZENML_GCP_GITOPS_LOCAL_DB",
    help="ZenML database: mysql://USER:PASSWORD@HOST:PORT/DB [SQLite]. "
    "Or $ZENML_GCP_GITOPS_LOCAL_DB, which keeps the password out of `ps`.",
)  # fmt: skip
@click.option("--zenml-port", type=click.IntRange(1, 65535), help="[a free port]")
@click.option("--mlflow-port", type=click.IntRange(1, 65535), help="[a free port]")
@click.option(
    "--registry/--no-registry", default=None,
    help="Run a local OCI registry [on when a `registry` binary is on PATH].",
)  # fmt: skip
@_output
def up(
    name: str,
    data_dir: Path | None,
    db_url: str | None,
    zenml_port: int | None,
    mlflow_port: int | None,
    registry: bool | None,
    output: str,
) -> None:
    """Start the services (or re-check them) and register the local stack."""
    from ..local import up_quietly
    from ..local.report import print_up

    result = up_quietly(
        output,
        name,
        data_dir,
        db_url,
        zenml_port=zenml_port,
        mlflow_port=mlflow_port,
        registry=registry,
    )
    print_up(result, output)


@local.command("down")
@_common
@click.option("--purge", is_flag=True, help="Also delete the data, credentials and logs.")
@_output
def down(name: str, data_dir: Path | None, purge: bool, output: str) -> None:
    """Stop every service's whole process group; keep the data unless --purge."""
    from ..local.rehearsal import local_down
    from ..local.report import print_down

    print_down(local_down(name, data_dir, purge=purge), output)


@local.command("status")
@_common
@_output
def status(name: str, data_dir: Path | None, output: str) -> None:
    """Each service's health. Exit code 1 when something is not healthy or there is no
    rehearsal."""
    from ..local.rehearsal import local_status
    from ..local.report import print_status

    result = local_status(name, data_dir)
    print_status(result, output)
    if not result["exists"] or (result["services"] and not result["healthy"]):
        raise SystemExit(1)


@local.command("env")
@_common
def env(name: str, data_dir: Path | None) -> None:
    """Print `export` lines for pipelines: eval "$(zenml-gcp-gitops local env)".

    The API key is read from its 0600 file by the shell; it is never printed.
    """
    from ..local.pipeline_env import pipeline_env
    from ..local.specs import default_dir

    base = (data_dir or default_dir(name)).resolve()
    for var in pipeline_env(base):
        click.echo(var.export_line())


@local.command("run-example")
@_common
@click.option("--min-accuracy", type=float, help="Quality gate threshold [0.9].")
def run_example(name: str, data_dir: Path | None, min_accuracy: float | None) -> None:
    """Run the example training pipeline on the local stack, with the pipeline environment.

    The same as `eval "$(zenml-gcp-gitops local env)"; python examples/run.py --stack
    NAME-local`, using the examples shipped with this package.
    """
    from ..local.pipeline_env import run_example as run

    raise SystemExit(run(name, data_dir, min_accuracy))


def _log(line: str) -> None:
    from ..ui import console_err

    console_err().print(f"  {line}", highlight=False, markup=False)


@local.command("backup")
@_common
@click.option("--list", "list_only", is_flag=True, help="List the backups instead.")
@_output
def backup(name: str, data_dir: Path | None, list_only: bool, output: str) -> None:
    """Copy the ZenML, MLflow and MLflow auth databases to <dir>/backups/<UTC timestamp>/."""
    from ..ops.local import list_local_backups, local_backup
    from ..ui import console, print_json

    if list_only:
        items = list_local_backups(name, data_dir)
        if output == "json":
            print_json({"backups": items})
        for m in items if output != "json" else []:
            known = m.get("known") or {}
            run = (known.get("pipeline_run") or {}).get("name", "-")
            console().print(
                f"{m['id']}  databases {', '.join(m['databases'])}  newest run {run}", markup=False
            )
        return
    result = local_backup(name, data_dir, log=_log)
    if output == "json":
        print_json({"ok": True, **result})
        return
    console().print(f"[green]Backup {result['id']}[/green] in {result['dir']}")
    console().print(
        f"Restore it with: {_restore_command(result['id'], name, data_dir)}", markup=False
    )


def _restore_command(bid: str, name: str, data_dir: Path | None) -> str:
    """The restore command as it works when pasted: this install's script, the same
    rehearsal (--name/--dir), and --yes (a paste has no terminal prompt to answer)."""
    from shlex import quote

    from ..ui import self_command

    flags = "" if name == "zenml" else f" --name {name}"
    if data_dir is not None:
        flags += f" --dir {quote(str(data_dir.resolve()))}"
    return f"{self_command()} local restore {bid}{flags} --yes"


@local.command("restore")
@_common
@click.argument("backup_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@_output
def restore(name: str, data_dir: Path | None, backup_id: str, yes: bool, output: str) -> None:
    """Stop the servers, put every database back from BACKUP_ID, restart, verify."""
    from ..errors import UserError
    from ..ops.local import local_restore
    from ..ui import console, is_interactive, print_json

    if not yes:
        if not is_interactive():
            raise UserError(
                f"restore overwrites the local ZenML, MLflow and MLflow auth databases with "
                f"backup {backup_id}; everything since is lost",
                "pass --yes",
            )
        click.confirm(
            f"Overwrite the local ZenML, MLflow and MLflow auth databases with {backup_id}?",
            abort=True,
        )
    result = local_restore(backup_id, name, data_dir, log=_log)
    if output == "json":
        print_json({"ok": True, **result})
        return
    console().print(f"[green]Restored {backup_id}[/green]")
    for db, state in result["databases"].items():
        console().print(f"  {db}: {state}", markup=False)
    verified = result.get("verified") or {}
    if verified:
        found = ", ".join(
            f"{k.replace('_', ' ')} {'yes' if v is True else 'NO' if v is False else v}"
            for k, v in verified.items()
        )
        console().print(f"  verified on the servers: {found}", markup=False)


COMMANDS: list[click.Command] = [local]
