"""The Pulumi stack: its workspace, backend, secrets provider, outputs and lock files.

open_stack(cfg, options, services, create=True) -> StackHandle | None
stack_outputs(cfg, options) -> OutputMap ;  read_secret_output(cfg, key) -> str | None
find_locks(cfg) -> [LockFile]    the diy backend's lock files (for `unlock`)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import user_data_dir
from ..errors import UserError
from ..run_options import RunOptions, Services
from .cli import plugin_versions, pulumi_command
from .events import command_error, first_meaningful_line

if TYPE_CHECKING:
    from pulumi import automation as auto

    from ..config import DeploymentConfig
    from ..phases.base import Reporter

# --------------------------------------------------------------------------- pulumi setup


def _program(services: Services) -> Callable[..., Any]:
    if services.program is not None:
        return services.program
    import importlib

    from ..resources import program_package

    module = importlib.import_module(program_package().__name__ + ".program")
    build: Callable[[DeploymentConfig], None] = module.build
    return build


def _run_program(
    services: Services,
    options: RunOptions,
    cfg: DeploymentConfig,
    adopt: dict[str, str] | None,
    audit_prior: dict[str, Any] | None = None,
) -> None:
    from ..state.replace_guard import allowing

    # what --allow-replace names is registered without `protect`, so Pulumi may replace it
    with allowing(options.allow_replace):
        if audit_prior:
            _program(services)(cfg, adopt, audit_prior=audit_prior)
        elif adopt:
            _program(services)(cfg, adopt)
        else:
            _program(services)(cfg)


@dataclass
class StackHandle:
    stack: auto.Stack
    existed: bool
    work_dir: Path
    state_url: str


def open_stack(
    cfg: DeploymentConfig,
    options: RunOptions | None = None,
    services: Services | None = None,
    *,
    program_cfg: DeploymentConfig | None = None,
    create: bool = True,
    state_url: str | None = None,
    extra_env: dict[str, str] | None = None,
    adopt: dict[str, str] | None = None,
    audit_prior: dict[str, Any] | None = None,
) -> StackHandle | None:
    """Create or select the stack. With create=False, None when it does not exist."""
    from pulumi import automation as auto

    options = options or RunOptions()
    services = services or Services()
    pcfg = program_cfg or cfg
    url = state_url or cfg.state_url
    if url.startswith("file://"):
        Path(url.removeprefix("file://")).expanduser().mkdir(parents=True, exist_ok=True)
    work_dir = Path(options.work_dir or user_data_dir() / "workspaces" / cfg.name)
    if state_url:
        work_dir = Path(tempfile.mkdtemp(prefix="zgg-preview-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    env = {
        "PULUMI_BACKEND_URL": url,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "GOOGLE_PROJECT": cfg.project,
        "GOOGLE_REGION": cfg.region,
        **dict(options.env),
        **(extra_env or {}),
    }
    provider = "passphrase" if state_url else secrets_provider(cfg)
    if provider == "passphrase":
        require_passphrase(cfg, {**os.environ, **env})
    ws_opts = auto.LocalWorkspaceOptions(
        work_dir=str(work_dir),
        pulumi_home=options.pulumi_home,
        project_settings=auto.ProjectSettings(
            name=cfg.names.pulumi_project, runtime="python", backend=auto.ProjectBackend(url=url)
        ),
        pulumi_command=pulumi_command(options.pulumi_root),
        secrets_provider=provider,
        env_vars=env,
        # resolved when Pulumi runs it: status/outputs/unlock never import the program
        program=lambda: _run_program(services, options, pcfg, adopt, audit_prior),
    )
    ws = auto.LocalWorkspace(**ws_opts.__dict__)
    name = cfg.names.pulumi_stack
    try:
        stack = auto.Stack.select(name, ws)
        existed = True
    except auto.StackNotFoundError:
        if not create:
            return None
        stack = auto.Stack.create(name, ws)
        existed = False
    except auto.CommandError as e:
        raise command_error(cfg, e, "select") from None
    return StackHandle(stack, existed, work_dir, url)


# --------------------------------------------------------------------------- operations


def configure(
    handle: StackHandle, cfg: DeploymentConfig, reporter: Reporter, paused: bool = False
) -> None:
    from pulumi import automation as auto

    from ..config import PAUSED_KEY

    stack = handle.stack
    stack.set_all_config(
        {
            "gcp:project": auto.ConfigValue(cfg.project),
            "gcp:region": auto.ConfigValue(cfg.region),
            # the program stops Cloud SQL and turns monitoring off while paused
            f"{cfg.names.pulumi_project}:{PAUSED_KEY}": auto.ConfigValue(str(paused).lower()),
        }
    )
    for plugin, version in plugin_versions().items():
        reporter.step(f"Installing the Pulumi {plugin} plugin v{version}")
        try:
            stack.workspace.install_plugin(plugin, f"v{version}")
        except auto.CommandError as e:
            raise UserError(
                f"could not install the Pulumi {plugin} plugin v{version}: "
                f"{first_meaningful_line(getattr(e, 'stderr', '') or str(e))}",
                f"check access to get.pulumi.com, or run `pulumi plugin install resource {plugin} "
                f"{version}` yourself and re-run",
            ) from None


def resource_count(handle: StackHandle) -> int | None:
    try:
        for s in handle.stack.workspace.list_stacks():
            if s.name == handle.stack.name:
                return s.resource_count
    except Exception:  # noqa: BLE001 - the count only sizes a progress bar
        return None
    return None


def exported_resources(handle: StackHandle) -> list[dict[str, Any]]:
    deployment = handle.stack.export_stack().deployment or {}
    return list(deployment.get("resources") or [])


def split_outputs(outputs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(plain outputs without secrets, names of the secret ones)."""
    plain = {k: v.value for k, v in outputs.items() if not v.secret}
    secret = sorted(k for k, v in outputs.items() if v.secret)
    return plain, secret


def read_secret_output(
    cfg: DeploymentConfig,
    key: str,
    options: RunOptions | None = None,
    services: Services | None = None,
) -> str | None:
    """A Pulumi secret output, read from the stack when a later phase needs it (never recorded)."""
    handle = open_stack(cfg, options, services, create=False)
    if handle is None:
        return None
    value = handle.stack.outputs().get(key)
    return None if value is None else value.value


def stack_outputs(
    cfg: DeploymentConfig, options: RunOptions | None = None, services: Services | None = None
) -> dict[str, Any]:
    """`zenml-gcp-gitops outputs`: the OutputMap of the deployed stack."""
    handle = open_stack(cfg, options, services, create=False)
    if handle is None:
        raise UserError(
            f"no Pulumi stack '{cfg.names.pulumi_stack}' in {cfg.state_url}",
            "deploy first, or pass the --project/--name/--state the deployment used",
        )
    try:
        return dict(handle.stack.outputs())
    except Exception as e:  # noqa: BLE001 - CommandError or a decode error: both summarised in one line
        raise command_error(cfg, e, "stack output") from None


# --------------------------------------------------------------------------- unlock


@dataclass
class LockFile:
    location: str
    holder: str
    delete: Callable[[], None]


def _lock_prefixes(cfg: DeploymentConfig) -> tuple[str, ...]:
    """Project-scoped diy backends (Pulumi >= 3.61) and the legacy layout a reused bucket has."""
    n = cfg.names
    return (
        f".pulumi/locks/organization/{n.pulumi_project}/{n.pulumi_stack}/",
        f".pulumi/locks/{n.pulumi_stack}/",
    )


def _holder(text: str) -> str:
    import json

    try:
        c = json.loads(text)
        return (
            f"{c.get('username')}@{c.get('hostname')} (pid {c.get('pid')}) at {c.get('timestamp')}"
        )
    except ValueError:
        return "unknown holder"


def _unlinker(path: Path) -> Callable[[], None]:
    return lambda: path.unlink(missing_ok=True)


def find_locks(cfg: DeploymentConfig, storage_client: Any = None) -> list[LockFile]:
    """The lock files of this deployment's stack in its diy backend (file:// or gs://)."""
    url = cfg.state_url
    if url.startswith("file://"):
        base = Path(url.removeprefix("file://")).expanduser()
        return [
            LockFile(str(p), _holder(p.read_text()), _unlinker(p))
            for prefix in _lock_prefixes(cfg)
            for p in sorted((base / prefix).glob("*.json"))
        ]
    bucket, _, sub = url.removeprefix("gs://").partition("/")
    root = f"{sub.strip('/')}/" if sub.strip("/") else ""
    if storage_client is None:
        import google.cloud.storage as storage

        storage_client = storage.Client(project=cfg.project)
    from google.api_core import exceptions as gexc

    try:
        return [
            LockFile(f"gs://{bucket}/{b.name}", _holder(b.download_as_text()), b.delete)
            for prefix in _lock_prefixes(cfg)
            for b in storage_client.list_blobs(bucket, prefix=root + prefix)
            if b.name.endswith(".json")
        ]
    except gexc.NotFound:
        return []  # no state bucket: nothing can be locked
    except gexc.Forbidden as e:
        raise UserError(
            f"cannot list the locks in gs://{bucket}: {e.message}",
            "you need storage.objects.list/delete on the state bucket",
        ) from None


def secrets_provider(cfg: DeploymentConfig) -> str:
    """`passphrase`, or the Cloud KMS key preflight made for the state's secrets."""
    if cfg.secrets_provider == "passphrase":
        return "passphrase"
    n = cfg.names
    return (
        f"gcpkms://projects/{cfg.project}/locations/{cfg.region}/keyRings/"
        f"{n.state_kms_keyring}/cryptoKeys/{n.state_kms_key}"
    )


def require_passphrase(cfg: DeploymentConfig, env: dict[str, str] | None = None) -> None:
    env = env if env is not None else dict(os.environ)
    if cfg.secrets_provider == "passphrase" and not (
        env.get("PULUMI_CONFIG_PASSPHRASE") is not None or env.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    ):
        raise UserError(
            "--secrets-provider passphrase needs PULUMI_CONFIG_PASSPHRASE (or "
            "PULUMI_CONFIG_PASSPHRASE_FILE) in the environment",
            "export PULUMI_CONFIG_PASSPHRASE=... and keep it safe: the state's secrets are "
            "encrypted with it and cannot be read without it",
        )
