"""The Pulumi CLI: where it is, its version policy, and installing it into the data dir.

find_pulumi_root(pulumi_root) -> str | None     flag, env, data dir; None means PATH
pulumi_command(pulumi_root) -> PulumiCommand     the CLI to drive (no version check)
ensure_pulumi(cfg, reporter, ...) -> PulumiCommand   preflight: present and supported,
                                                 installed after asking when missing
check_gcp_plugin(cmd, pulumi_home) -> dict      is the provider plugin installed?
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from importlib import metadata
from typing import TYPE_CHECKING, Any

from packaging.version import InvalidVersion, Version

from ..config import user_data_dir
from ..errors import UserError

if TYPE_CHECKING:
    from pulumi import automation as auto

    from ..config import DeploymentConfig

PULUMI_ROOT_ENV = "ZENML_GCP_GITOPS_PULUMI_ROOT"
MIN_PULUMI = "3.160.0"  # engine events over gRPC and project-scoped diy stacks
SUPPORTED_MAJOR = 3


def gcp_plugin_version() -> str:
    """The pulumi-gcp provider plugin version that matches the installed `pulumi_gcp` SDK."""
    return metadata.version("pulumi_gcp")


def plugin_versions() -> dict[str, str]:
    """Every resource plugin the program needs, at the versions of the installed SDKs."""
    out = {"gcp": gcp_plugin_version()}
    with contextlib.suppress(metadata.PackageNotFoundError):
        out["random"] = metadata.version("pulumi_random")
    return out


def find_pulumi_root(pulumi_root: str | None = None) -> str | None:
    """Where the Pulumi CLI lives: flag/option, env, our data dir; None means `pulumi` on PATH."""
    for candidate in (pulumi_root, os.environ.get(PULUMI_ROOT_ENV)):
        if candidate:
            return str(candidate)
    ours = user_data_dir() / "pulumi"
    if (ours / "bin" / "pulumi").exists():
        return str(ours)
    return None


def pulumi_command(pulumi_root: str | None = None) -> auto.PulumiCommand:
    """The CLI to drive. Version policy is enforced by preflight, with a clearer message."""
    from pulumi import automation as auto

    root = find_pulumi_root(pulumi_root)
    try:
        return auto.PulumiCommand(root=root, skip_version_check=True)
    except OSError:
        raise UserError(
            "the Pulumi CLI was not found" + (f" under {root}" if root else " on PATH"),
            "run `zenml-gcp-gitops deploy` (preflight offers to install it) or install it from "
            "https://www.pulumi.com/docs/install/",
        ) from None


def release(version: str | None) -> Version | None:
    """The release part of a CLI version (`v3.170.0-alpha.x1` -> 3.170.0); None if unparsable."""
    if not version:
        return None
    try:
        return Version(str(version).lstrip("v").split("-")[0].split("+")[0])
    except InvalidVersion:
        return None


def supported(version: str | None) -> bool:
    """3.x from MIN_PULUMI on: older ones lack engine events over gRPC, 4.x is untested."""
    v = release(version)
    return v is not None and v >= Version(MIN_PULUMI) and v.major == SUPPORTED_MAJOR


Installer = Callable[..., Any]


def ensure_pulumi(
    cfg: DeploymentConfig,
    reporter: Any,
    *,
    pulumi_root: str | None = None,
    yes: bool = False,
    installer: Installer | None = None,
) -> Any:
    """The Pulumi CLI, installed into the data dir (after asking) when it is missing."""
    from pulumi import automation as auto

    root = find_pulumi_root(pulumi_root)
    try:
        cmd = auto.PulumiCommand(root=root, skip_version_check=True)
    except OSError:
        cmd = None
    if cmd is None:
        if root and (pulumi_root or PULUMI_ROOT_ENV in os.environ):
            raise UserError(
                f"no Pulumi CLI at {root}/bin/pulumi",
                f"fix {PULUMI_ROOT_ENV} / the install, or unset it to use the one in the data dir",
            )
        cmd = _install(cfg, reporter, yes=yes, installer=installer)
    if not supported(_version(cmd)) and root is None:
        # an old `pulumi` on PATH: offer the pinned version in the data dir instead
        reporter.step(f"The Pulumi CLI on PATH is v{cmd.version}; {MIN_PULUMI} or newer is needed")
        cmd = _install(
            cfg, reporter, yes=yes, installer=installer, reason=f"is v{cmd.version}, too old"
        )
    if not supported(_version(cmd)):
        raise UserError(
            f"the Pulumi CLI at {cmd.command} is version {cmd.version or 'unknown'}; "
            f"{SUPPORTED_MAJOR}.x from {MIN_PULUMI} is supported",
            f"upgrade it (https://www.pulumi.com/docs/install/), or unset {PULUMI_ROOT_ENV} so "
            f"preflight can install v{cfg.versions.pulumi_cli} into {user_data_dir() / 'pulumi'}",
        )
    return cmd


def _version(cmd: Any) -> str | None:
    return str(cmd.version) if cmd.version else None


def _install(
    cfg: DeploymentConfig,
    reporter: Any,
    *,
    yes: bool,
    installer: Installer | None,
    reason: str = "is not installed",
) -> Any:
    from pulumi import automation as auto

    # Pulumi's installer takes its own version type (semver's), so that is what we build.
    from semver import VersionInfo

    version = cfg.versions.pulumi_cli.lstrip("v")
    target = user_data_dir() / "pulumi"
    manual = (
        f"install it yourself: `curl -fsSL https://get.pulumi.com | sh -s -- --version {version}` "
        "(https://www.pulumi.com/docs/install/), then re-run"
    )
    if not yes:
        from ..ui import is_interactive

        if not is_interactive():
            raise UserError(
                f"the Pulumi CLI {reason}",
                f"re-run with --yes to let preflight download Pulumi v{version} into {target}, or {manual}",
            )
        import click

        pause = getattr(reporter, "paused", None)
        with pause() if pause is not None else contextlib.nullcontext():
            ok = click.confirm(
                f"The Pulumi CLI {reason}. Download v{version} into {target}?", default=True
            )
        if not ok:
            raise UserError("the Pulumi CLI is required", manual)
    reporter.step(f"Installing the Pulumi CLI v{version} into {target}")
    install = installer or auto.PulumiCommand.install
    try:
        return install(
            root=str(target), version=VersionInfo.parse(version), skip_version_check=True
        )
    except Exception as e:  # noqa: BLE001 - download, unpack or exec: every cause gets the manual way
        raise UserError(
            f"could not download the Pulumi CLI v{version} ({e.__class__.__name__}: {e})", manual
        ) from None


def check_gcp_plugin(cmd: Any, pulumi_home: str | None = None) -> dict[str, Any]:
    """Is the provider plugin matching `pulumi_gcp` installed? (infra installs it if not)."""
    from pulumi import automation as auto

    want = gcp_plugin_version()
    env = {"PULUMI_HOME": pulumi_home} if pulumi_home else {}
    try:
        out = cmd.run(["plugin", "ls", "--json"], os.getcwd(), env).stdout
        plugins = json.loads(out or "[]") or []
    except (auto.CommandError, OSError, ValueError):
        plugins = []  # an unreadable list only means "install it": infra does
    have = sorted(
        {
            str(p.get("version", "")).lstrip("v")
            for p in plugins
            if p.get("name") == "gcp" and p.get("kind") == "resource"
        }
    )
    return {"gcp_plugin": want, "gcp_plugin_installed": want in have, "gcp_plugins_present": have}
