"""pause, resume: stop what a deployed stack bills by the hour, and start it again."""

from __future__ import annotations

from typing import Any

import click

from .monitoring_view import paused_line
from .options import ConfigSource, config_options, output_option


def _who() -> str:
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (a container): the host still says who
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _log(line: str) -> None:
    from ..ui import console_err

    console_err().print(f"  {line}", highlight=False, markup=False)


def _engine(config: ConfigSource) -> Any:
    from .deploy import _make_engine, _require_credentials

    cfg = config.load()
    engine = _make_engine(cfg)
    _require_credentials(cfg, engine)
    return engine


def _local_options(func: Any) -> Any:
    from .options import UserPath

    func = click.option(
        "--dir", "data_dir", type=UserPath(file_okay=False, root_ok=False),
        help="--local: the rehearsal's data dir [user data dir/local/NAME].",
    )(func)  # fmt: skip
    return click.option(
        "--local", is_flag=True, help="The local rehearsal (`deploy --local`) instead of GCP."
    )(func)


def _print(output: str, result: dict[str, Any], text: str) -> None:
    from ..ui import console, print_json

    if output == "json":
        print_json({"ok": True, **result})
    else:
        console().print(text)


@click.command("pause")
@config_options
@click.option("--force", is_flag=True, help="Pause even while pipeline runs are in progress.")
@_local_options
@output_option
def pause(config: ConfigSource, force: bool, local: bool, data_dir: Any, output: str) -> None:
    """Stop the servers, the operators, Argo CD and Cloud SQL; keep every byte, name and URL.

    \b
    The desired state itself says paused, so no Argo CD sync and no `deploy` undoes it
    (`deploy --resume` or `resume` does). Refuses while pipeline runs are in progress.
    Re-running finishes an interrupted pause.
    """
    if local:
        from ..ops.local_pause import local_pause
        from .deploy import _local_name

        result = local_pause(_local_name(config), data_dir, _who(), log=_log)
        _print(output, result, paused_line(result["paused"]))
        return
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
@_local_options
@output_option
def resume(config: ConfigSource, local: bool, data_dir: Any, output: str) -> None:
    """Start a paused stack again: Cloud SQL and monitoring, Argo CD, then the apps.

    Waits until every Argo CD app is Healthy and the servers answer, then checks the
    registered ZenML stack as `status` does. Re-running finishes an interrupted resume.
    """
    if local:
        from ..ops.local_pause import local_resume
        from .deploy import _local_name

        result = local_resume(_local_name(config), data_dir, log=_log)
        _print(output, result, "Resumed." if result["resumed"] else "It was not paused.")
        return
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
