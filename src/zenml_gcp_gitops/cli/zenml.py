"""ZenML commands: `register` (the stack) and `ci-account create|rotate|show|delete`.

Admin credentials come from ZENML_STORE_API_KEY or ZENML_STORE_USERNAME/ZENML_STORE_PASSWORD,
else from the Secret Manager secret infra made. Only click and the standard library are
imported at module level; zenml is imported inside the commands. The length is the
commands' flags and help; the work is in `phases/register.py` and `zenml/`.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .options import (
    ConfigSource,
    UserPath,
    config_options,
    credentials_from_env_option,
    output_option,
    retain_minutes_option,
    timeout_option,
)
from .zenml_export import export_yaml, zenml_commands

if TYPE_CHECKING:
    from ..config import DeploymentConfig
    from ..gcp.secrets import SecretAccess
    from ..outputs import InfraOutputs
    from ..phases.base import PhaseContext

# Tests replace this to inject tests/fakes/gcp_secrets.py; it maps a project to SecretAccess.
SECRET_ACCESS_FACTORY: Callable[[str, dict[str, str]], SecretAccess] | None = None


def _secret_access(cfg: DeploymentConfig) -> SecretAccess:
    if SECRET_ACCESS_FACTORY is not None:
        return SECRET_ACCESS_FACTORY(cfg.project, cfg.names.labels)
    from ..gcp.secrets import GcpSecretManager

    return GcpSecretManager(cfg.project, cfg.names.labels)


def _zenml_logs_to_stderr() -> None:
    """ZenML logs to stdout; move its console handler to stderr so `--output json` stays
    one clean document on stdout (the import is paid by the command anyway)."""
    import logging

    try:
        from zenml.logger import ZenMLConsoleHandler
    except ImportError:  # pragma: no cover - older zenml without the class
        return
    for handler in logging.getLogger().handlers:
        if isinstance(handler, ZenMLConsoleHandler):
            handler.setStream(sys.__stderr__)


def _load(
    config: ConfigSource, outputs_file: Path | None
) -> tuple[DeploymentConfig, InfraOutputs | None]:
    """The config; project/region/name default to the outputs file's when not given."""
    from ..outputs import InfraOutputs

    _zenml_logs_to_stderr()
    outputs = InfraOutputs.from_file(outputs_file) if outputs_file is not None else None
    if outputs is not None:
        for key in ("project", "region", "name"):
            if config.overrides.get(key) is None:
                config.overrides[key] = getattr(outputs, key)
    return config.load(), outputs


def _context(
    cfg: DeploymentConfig, outputs: InfraOutputs | None, zenml_url: str | None, **options: Any
) -> PhaseContext:
    from ..phases.base import PhaseContext
    from ..run_options import RunOptions, Services

    flags = {k: v for k, v in options.items() if v is not None}
    ctx = PhaseContext(
        cfg=cfg,
        options=RunOptions(zenml_url=zenml_url or None, **flags),
        services=Services(secret_manager=_LazySecrets(cfg)),
    )
    ctx._infra = outputs
    return ctx


class _LazySecrets:
    """Builds the Secret Manager client on first use (not needed when env has credentials)."""

    def __init__(self, cfg: DeploymentConfig) -> None:
        self.cfg = cfg
        self._inner: SecretAccess | None = None

    def _get(self) -> SecretAccess:
        if self._inner is None:
            self._inner = _secret_access(self.cfg)
        return self._inner

    def read(self, secret_id: str) -> str | None:
        return self._get().read(secret_id)

    def add_version(self, secret_id: str, value: str) -> str:
        return self._get().add_version(secret_id, value)

    def destroy_versions(self, secret_id: str) -> int:
        return self._get().destroy_versions(secret_id)

    def versions(self, secret_id: str) -> Any:
        inner: Any = self._get()
        return inner.versions(secret_id) if hasattr(inner, "versions") else []

    def disable_version(self, secret_id: str, number: int) -> None:
        self._get().disable_version(secret_id, number)  # type: ignore[attr-defined]

    def destroy_version(self, secret_id: str, number: int) -> None:
        self._get().destroy_version(secret_id, number)  # type: ignore[attr-defined]


def _url(ctx: PhaseContext) -> str:
    from ..errors import ConfigError

    if ctx.options.zenml_url:
        return ctx.options.zenml_url
    if ctx._infra is not None:
        return ctx._infra.zenml_url
    # last: the server the environment points at (a server you brought yourself)
    env = os.environ.get("ZENML_STORE_URL", "")
    if env.startswith(("http://", "https://")):
        return env
    raise ConfigError("no ZenML server URL", "pass --zenml-url URL or --outputs FILE")


# ------------------------------------------------------------------------- print / export


@click.command("register")
@config_options
@click.option(
    "--outputs",
    "outputs_file",
    type=UserPath(dir_okay=False),
    help="JSON from `outputs --output json` (or a whole `plan --output json`).",
)
@click.option("--zenml-url", help="ZenML server URL [https://<zenml_host> from the outputs].")
@click.option(
    "--adopt",
    is_flag=True,
    help="Take over same-named components and secret made by someone else.",
)
@credentials_from_env_option
@click.option(
    "--activate",
    is_flag=True,
    help="Also log your global ZenML client in and set the stack active.",
)
@click.option(
    "--print-commands",
    is_flag=True,
    help="Only print the equivalent `zenml ... register` commands (registers nothing).",
)
@click.option(
    "--export",
    "export_file",
    type=UserPath(dir_okay=False),
    help="Only write the stack as `zenml stack import` YAML (registers nothing).",
)
@click.option(
    "--verify/--no-verify",
    default=False,
    help="Ask the server to verify the GCP connector (needs its access to GCP) [off].",
)
@timeout_option("Seconds the whole run may take against the server (health wait, login, requests).")
@output_option
def register_cmd(
    config: ConfigSource,
    outputs_file: Path | None,
    zenml_url: str | None,
    adopt: bool,
    credentials_from_env: bool,
    activate: bool,
    print_commands: bool,
    export_file: Path | None,
    verify: bool,
    timeout: float,
    output: str,
) -> None:
    """Register (upsert) the deployment's ZenML stack on its server.

    \b
    Registers a GCP service connector, the artifact store, container registry,
    orchestrator, MLflow experiment tracker and image builder, and the stack,
    all labelled as ours. Re-running changes only what changed.
    """
    from ..errors import ConfigError
    from ..ui import console, print_json
    from ..zenml.stack_spec import gcp_stack_spec

    cfg, outputs = _load(config, outputs_file)
    if outputs is None:
        raise ConfigError(
            "register needs the infra outputs",
            "pass --outputs FILE (the JSON of `zenml-gcp-gitops outputs --output json`)",
        )
    if print_commands or export_file is not None:
        spec = gcp_stack_spec(cfg, outputs)
        if export_file is not None:
            import yaml

            from ..files import write_user_file

            write_user_file(export_file, yaml.safe_dump(export_yaml(spec), sort_keys=False))
            if not print_commands:
                console().print(
                    f"Wrote {export_file}; import it with `zenml stack import {export_file}`"
                )
        if print_commands:
            for line in zenml_commands(spec):
                click.echo(line)
        return

    from ..phases.register import RegisterPhase, admin_credentials

    ctx = _context(
        cfg,
        outputs,
        zenml_url,
        adopt=adopt,
        timeout=timeout,
        verify_connector=verify,
        credentials_from_env=credentials_from_env,
    )
    url = _url(ctx)
    ctx.options = dataclasses.replace(ctx.options, zenml_url=url)
    logs: list[str] = []
    ctx.reporter = _list_reporter(logs)
    result = RegisterPhase().run(ctx)
    if activate:
        from ..zenml.session import activate_global_client

        activate_global_client(url, admin_credentials(ctx), result["stack"]["name"])
    if output == "json":
        print_json({k: result[k] for k in ("stack", "components", "connector")})
        return
    out = console()
    out.print(
        f"Stack [bold]{result['stack']['name']}[/bold] ({result['stack']['id']}) on {result['zenml_url']}"
    )
    for line in logs:
        out.print(f"  {line}")
    verdict = result.get("connector_verification")
    if verdict and verdict.get("error"):
        out.print(f"  connector verification error: {verdict['error']}")
    if activate:
        out.print(
            f"Your ZenML client now uses {result['zenml_url']} with stack {result['stack']['name']} active."
        )


def _list_reporter(sink: list[str]) -> Any:
    """A reporter that keeps the log lines (the command prints them after its result)."""
    from ..phases.base import NullReporter

    class ListReporter(NullReporter):
        def log(self, line: str) -> None:
            sink.append(line)

    return ListReporter()


# ------------------------------------------------------------------------- ci-account


def _ci_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--zenml-url", help="ZenML server URL [from --outputs, else ZENML_STORE_URL]."
    )(func)
    func = click.option(
        "--outputs",
        "outputs_file",
        type=UserPath(dir_okay=False),
        help="JSON from `outputs --output json`.",
    )(func)
    func = timeout_option("Seconds the whole command may take against the server.")(func)
    func = credentials_from_env_option(func)
    func = output_option(func)
    return config_options(func)


def _render_ci(data: dict[str, Any], log: list[str], output: str) -> None:
    from ..ui import console, print_json

    if output == "json":
        print_json(data)
        return
    out = console()
    sa = data["service_account"]
    if sa:
        out.print(
            f"Service account [bold]{sa['name']}[/bold] ({sa['id']}), API key {data['api_key_name']}"
        )
    for line in log:
        out.print(f"  {line}")
    if data.get("api_key"):
        _print_key(data["api_key"])


_SHOWN_ONCE = "API key (shown once, store it now):"


def _print_key(key: str, err: bool = False) -> None:
    """The only copy of a new key, printed once (on stderr where stdout has a JSON document)."""
    if err:
        click.echo(f"{_SHOWN_ONCE} {key}", err=True)
        return
    from ..ui import console

    console().print(_SHOWN_ONCE)
    click.echo(key)


def _fetch_hint(cfg: DeploymentConfig) -> str:
    sid = cfg.names.secrets["ci_api_key"]
    return f"fetch it with: gcloud secrets versions access latest --secret={sid} --project={cfg.project}"


def _secrets(ctx: PhaseContext) -> SecretAccess:
    from ..phases.register import secret_access

    return secret_access(ctx)


def _admin_session(
    config: ConfigSource, outputs_file: Path | None, zenml_url: str | None, timeout: float,
    credentials_from_env: bool = False,
) -> tuple[DeploymentConfig, PhaseContext, str, Any]:  # fmt: skip
    """Config, phase context, server URL and an admin-logged-in store: what the ci-account
    commands share. `timeout` bounds the whole command against the server."""
    from ..phases.register import admin_credentials
    from ..zenml.session import Deadline, connect

    cfg, outputs = _load(config, outputs_file)
    ctx = _context(cfg, outputs, zenml_url, credentials_from_env=credentials_from_env)
    url = _url(ctx)
    creds = admin_credentials(ctx)
    return cfg, ctx, url, connect(url, creds, timeout=timeout, deadline=Deadline(timeout))


def _ensure(
    config: ConfigSource, outputs_file: Path | None, zenml_url: str | None, timeout: float,
    output: str, show_key: bool, rotate: bool, retain_minutes: int, credentials_from_env: bool,
) -> None:  # fmt: skip
    from ..zenml.apply import find_stack_id
    from ..zenml.ci_account import ensure_ci_account

    cfg, ctx, url, store = _admin_session(
        config, outputs_file, zenml_url, timeout, credentials_from_env
    )
    shown: list[str] = []

    def show(key: str) -> None:
        # The only copy: out before Secret Manager, gh or anything else gets a chance to fail.
        shown.append(key)
        if output != "json":
            _print_key(key)

    try:
        result = ensure_ci_account(
            store,
            cfg,
            secrets=_secrets(ctx),
            rotate=rotate,
            retain_minutes=retain_minutes,
            github_repo=cfg.github_repo,
            zenml_url=url,
            store_secret=not show_key,
            stack_id=find_stack_id(store, cfg.names.zenml_stack),
            on_key=show if show_key else None,
        )
    except BaseException:
        if shown and output == "json":  # stdout gets the error document; the key goes here
            _print_key(shown[0], err=True)
        raise
    if result.api_key and not show_key:
        result.log.append(_fetch_hint(cfg))
    from ..extras import pipeline_install

    result.log.append("a pipeline environment (CI job, laptop) installs:")
    result.log += [f"  {x}" for x in pipeline_install(cfg.orchestrator, cfg.versions.zenml_chart)]
    data = result.public_dict(show_key=show_key)
    if output != "json":
        data.pop("api_key", None)  # printed above already
    _render_ci(data, result.log, output)


@click.group("ci-account")
def ci_account() -> None:
    """The ZenML service account and API key that CI runs pipelines with."""


@ci_account.command("create")
@_ci_options
@click.option(
    "--show-key", is_flag=True, help="Print a new key once instead of storing it in Secret Manager."
)
@click.option("--rotate", is_flag=True, help="Replace an existing key (see `rotate`).")
@retain_minutes_option("With --rotate: how long the old key keeps working.")
def ci_create(
    config: ConfigSource, outputs_file: Path | None, zenml_url: str | None, timeout: float,
    output: str, show_key: bool, rotate: bool, retain_minutes: int, credentials_from_env: bool,
) -> None:  # fmt: skip
    """Create the account and its key (a re-run keeps the key).

    With --github-repo owner/repo, also set that repository's ZENML_STORE_URL and
    ZENML_STORE_API_KEY secrets through `gh`, or print the commands to do so.
    """
    _ensure(
        config,
        outputs_file,
        zenml_url,
        timeout,
        output,
        show_key,
        rotate,
        retain_minutes,
        credentials_from_env,
    )


@ci_account.command("rotate")
@_ci_options
@click.option(
    "--show-key",
    is_flag=True,
    help="Print the new key once instead of storing it in Secret Manager.",
)
@retain_minutes_option("How long the old key keeps working (0: revoke it now).")
def ci_rotate(
    config: ConfigSource, outputs_file: Path | None, zenml_url: str | None, timeout: float,
    output: str, show_key: bool, retain_minutes: int, credentials_from_env: bool,
) -> None:  # fmt: skip
    """Issue a new key; the old one keeps working for --retain-minutes."""
    _ensure(
        config,
        outputs_file,
        zenml_url,
        timeout,
        output,
        show_key,
        True,
        retain_minutes,
        credentials_from_env,
    )


@ci_account.command("show")
@_ci_options
@click.option("--show-key", is_flag=True, help="Also print the stored key from Secret Manager.")
def ci_show(
    config: ConfigSource, outputs_file: Path | None, zenml_url: str | None, timeout: float,
    output: str, show_key: bool, credentials_from_env: bool,
) -> None:  # fmt: skip
    """Show the account, whether its key is active, and its age."""
    from ..errors import UserError
    from ..zenml.ci_account import ci_status

    cfg, ctx, _, store = _admin_session(
        config, outputs_file, zenml_url, timeout, credentials_from_env
    )
    st = ci_status(store, cfg, secrets=_secrets(ctx))
    if st["service_account"] is None:
        raise UserError(
            f"there is no service account {cfg.names.zenml_ci_account}",
            "create it with `zenml-gcp-gitops ci-account create`",
        )
    sid = cfg.names.secrets["ci_api_key"]
    data: dict[str, Any] = {
        "service_account": {k: st["service_account"][k] for k in ("id", "name")},
        "api_key_name": cfg.names.zenml_ci_key,
        "secret_id": sid,
    }
    if show_key:
        key = _secrets(ctx).read(sid)
        if key is None:
            raise UserError(f"Secret Manager {sid} holds no key", "run `ci-account rotate`")
        data["api_key"] = key
    k = st["api_key"]
    log = (
        [
            f"key {'active' if k['active'] else 'INACTIVE'}, {k['age_days']} days old, last login {k['last_login'] or 'never'}"
        ]
        if k
        else ["no API key: run `zenml-gcp-gitops ci-account rotate`"]
    ) + st.get("key_versions_log", [])
    _render_ci(data, log + ([] if show_key else [_fetch_hint(cfg)]), output)


@ci_account.command("delete")
@_ci_options
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
def ci_delete(
    config: ConfigSource, outputs_file: Path | None, zenml_url: str | None, timeout: float,
    output: str, yes: bool, credentials_from_env: bool,
) -> None:  # fmt: skip
    """Delete the API key, the service account and the stored key versions."""
    from ..ui import is_interactive
    from ..zenml.ci_account import ci_status, delete_ci_account

    cfg, ctx, _, store = _admin_session(
        config, outputs_file, zenml_url, timeout, credentials_from_env
    )
    if not yes and is_interactive():
        click.confirm(f"Delete {cfg.names.zenml_ci_account} and its API key?", abort=True)
    before = ci_status(store, cfg)["service_account"]
    removed = delete_ci_account(store, cfg, secrets=_secrets(ctx))
    data = {
        "service_account": {k: before[k] for k in ("id", "name")} if before else None,
        "api_key_name": cfg.names.zenml_ci_key,
        "secret_id": cfg.names.secrets["ci_api_key"],
    }
    _render_ci(data, [f"deleted {x}" for x in removed] or ["nothing to delete"], output)


COMMANDS: list[click.Command] = [register_cmd, ci_account]
