"""Which extra of this distribution a command needs, and the one line that says so.

`pip install zenml-gcp-gitops` is the light part (what pipelines load); `deploy` and the
other commands need the `deploy` extra, the local rehearsal the `local` one. Checked from
the installed distribution's own metadata, so the list of requirements lives only in
pyproject.toml.
"""

from __future__ import annotations

from .errors import UserError
from .flavors import DISTRIBUTION, VERSION

DEPLOY = "deploy"
LOCAL = "local"


def install_line(extra: str) -> str:
    return f"pip install '{DISTRIBUTION}[{extra}]=={VERSION}'"


def missing(extra: str, _seen: frozenset[str] = frozenset()) -> list[str]:
    """The extra's requirements that are absent or of another version; [] when they are all
    there or this code runs without installed metadata of ours (a source checkout)."""
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement

    try:
        lines = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return []
    out: list[str] = []
    for line in lines:
        try:
            req = Requirement(line)
        except InvalidRequirement:  # pragma: no cover - written by our own build
            continue
        if req.marker is None or not req.marker.evaluate({"extra": extra}):
            continue
        if req.marker.evaluate({"extra": ""}):
            continue  # a base requirement whose marker names no extra
        if req.name == DISTRIBUTION:  # `local` includes `deploy`
            for inner in sorted(req.extras - _seen - {extra}):
                out += missing(inner, _seen | {extra})
            continue
        try:
            have = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            out.append(req.name)
            continue
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            out.append(f"{req.name} {have} (needs {req.specifier})")
    return list(dict.fromkeys(out))


def needs_error(extra: str, what: str, absent: list[str]) -> UserError:
    shown = ", ".join(absent[:4]) + (f" and {len(absent) - 4} more" if len(absent) > 4 else "")
    return UserError(
        f"{what} needs the [{extra}] extra of {DISTRIBUTION} (missing: {shown})",
        f"run: {install_line(extra)}",
    )


def require(extra: str, what: str) -> None:
    """Raise the one-line `UserError` when `extra` is not fully installed."""
    absent = missing(extra)
    if absent:
        raise needs_error(extra, what, absent)


def from_import_error(e: ImportError, what: str) -> UserError | None:
    """An import that failed because an extra is not installed, as its one line (else None)."""
    if not isinstance(e, ModuleNotFoundError):
        return None
    for extra in (DEPLOY, LOCAL):
        absent = missing(extra)
        if absent:
            return needs_error(extra, what, absent)
    return None


def stack_integrations(orchestrator: str) -> tuple[str, ...]:
    """ZenML integrations the deployed stack's flavors come from."""
    return ("gcp", "kubernetes", "mlflow") if orchestrator == "kubernetes" else ("gcp", "mlflow")


def pipeline_install(orchestrator: str, zenml_version: str) -> list[str]:
    """What an environment that runs pipelines on the stack installs (docs/cli.md#packaging):
    ZenML, the light part, and ZenML's lists for the stack's integrations in one pip run with
    ZenML's own pins."""
    from .flavors import pipeline_requirement

    pins = f"zenml=={zenml_version} {pipeline_requirement()}"
    return [
        f"pip install {pins}",
        "zenml integration export-requirements "
        + " ".join(stack_integrations(orchestrator))
        + " --output-file integrations.txt",
        f"pip install {pins} -r integrations.txt",
    ]
