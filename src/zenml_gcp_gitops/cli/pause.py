"""pause, resume: stop what a deployed stack bills by the hour, and start it again."""

from __future__ import annotations

from typing import Any

import click

from .options import ConfigSource, config_options, output_option


def paused_line(entry: dict[str, Any]) -> str:
    from rich.markup import escape

    state = "resuming" if entry.get("resuming") else f"paused ({entry.get('stage', 'servers')})"
    if entry.get("stage") == "done" and not entry.get("resuming"):
        state = "paused"
    return (
        f"[yellow]{state}[/yellow] since {escape(str(entry.get('at')))} by "
        f"{escape(str(entry.get('by')))}: Cloud SQL, Argo CD and the servers are stopped; "
        "`zenml-gcp-gitops resume` starts them"
    )


def _who() -> str:
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (a container): the host still says who
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _engine(config: ConfigSource) -> Any:
    from .deploy import _make_engine, _require_credentials

    cfg = config.load()
    engine = _make_engine(cfg)
    _require_credentials(cfg, engine)
    return engine


@click.command("pause")
@config_options
@click.option("--force", is_flag=True, help="Pause even while pipeline runs are in progress.")
@output_option
def pause(config: ConfigSource, force: bool, output: str) -> None:
    """Stop the servers, the operators, Argo CD and Cloud SQL; keep every byte, name and URL.

    \b
    The desired state itself says paused, so no Argo CD sync and no `deploy` undoes it
    (`deploy --resume` or `resume` does). Refuses while pipeline runs are in progress.
    Re-running finishes an interrupted pause.
    """
    engine = _engine(config)
    result = engine.pause(by=_who(), force=force)
    if output == "json":
        from ..ui import print_json

        print_json({"ok": True, **result})
        return
    from ..ui import console

    console().print(paused_line(result["paused"]))


@click.command("resume")
@config_options
@output_option
def resume(config: ConfigSource, output: str) -> None:
    """Start a paused stack again: Cloud SQL and monitoring, Argo CD, then the apps.

    Waits until every Argo CD app is Healthy and the servers answer, then checks the
    registered ZenML stack as `status` does. Re-running finishes an interrupted resume.
    """
    engine = _engine(config)
    result = engine.resume()
    if output == "json":
        from ..ui import print_json

        print_json({"ok": True, **result})
        return
    from ..ui import console

    c = console()
    if result["resumed"]:
        c.print(
            f"[green]Resumed[/green] {engine.cfg.name} (paused since {result['paused_since']})."
        )
    else:
        c.print(f"{engine.cfg.name} was not paused; its apps are Healthy.")
    stack = result.get("stack")
    if stack is not None:
        c.print(f"  ZenML stack: {stack}", markup=False, highlight=False)


COMMANDS: list[click.Command] = [pause, resume]
