"""The `zenml.init_hooks` graft that adds `zenml stack deploy gcp-gitops` to ZenML's CLI.

ZenML calls `install()` on EVERY `import zenml`, including inside pipeline pods, so this
module must stay cheap and must never break ZenML:

* at hook time only the standard library is touched (`sys`, `os`); no click, rich or
  pydantic, and none of our own heavy modules;
* `install()` only puts a tiny finder at the front of `sys.meta_path`. When `zenml.cli`
  (or `zenml.cli.stack`) has finished executing, the finder swaps `stack deploy` for a
  dispatcher and removes itself. Processes that never load ZenML's CLI pay nothing more;
* every exception of ours is swallowed and logged at debug level, leaving ZenML untouched;
* `ZENML_GCP_GITOPS_DISABLE_CLI=1` turns the whole thing off.

The dispatcher is a shallow copy of ZenML's own `deploy` command: `zenml stack deploy -p gcp`
still runs ZenML's code (its help only gains an epilog that mentions `gcp-gitops`), while
`zenml stack deploy gcp-gitops ARGS...` runs `zenml-gcp-gitops deploy ARGS...`.
"""

from __future__ import annotations

import os
import sys

# `typing` costs milliseconds on a cold start; annotations are strings anyway.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DISABLE_ENV = "ZENML_GCP_GITOPS_DISABLE_CLI"
SUBCOMMAND = "gcp-gitops"
# Modules after whose execution we try to graft: `stack` defines the command, and the
# package `__init__` (which imports every command module) is the last chance.
_STACK_MODULE = "zenml.cli.stack"
_CLI_PACKAGE = "zenml.cli"
_WATCHED = frozenset({_STACK_MODULE, _CLI_PACKAGE})
_MARK = "_zenml_gcp_gitops_dispatcher"
_LOGGER = "zenml_gcp_gitops.zenml_hook"

FALLBACK_MESSAGE = (
    "zenml-gcp-gitops: this ZenML version's CLI has no `zenml stack deploy` command to extend; "
    "run `zenml-gcp-gitops deploy ...` instead (same options)."
)
EPILOG = (
    "Also: `zenml stack deploy gcp-gitops [OPTIONS]` deploys a production ZenML + MLflow "
    "stack on GKE, run by Argo CD (from the zenml-gcp-gitops package; see "
    "`zenml stack deploy gcp-gitops --help`)."
)


def _debug(msg: str, *args: object, exc: bool = False) -> None:
    """Debug log that itself can never raise (logging is stdlib and usually loaded already)."""
    try:
        import logging

        logging.getLogger(_LOGGER).debug(msg, *args, exc_info=exc)
    except Exception:  # noqa: BLE001 - the hook never raises into ZenML  # pragma: no cover - logging itself broken
        pass


def disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def install() -> None:
    """The entry point ZenML calls on `import zenml`. Never raises."""
    try:
        if disabled():
            _debug("%s is set: not extending the ZenML CLI", DISABLE_ENV)
            return
        if _STACK_MODULE in sys.modules or _CLI_PACKAGE in sys.modules:
            # ZenML's CLI is already (being) loaded, e.g. the hook was run by hand.
            _graft_after(_CLI_PACKAGE)
            return
        if not any(isinstance(f, _GraftFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, _GraftFinder())
    except Exception:  # noqa: BLE001 - the hook never raises into ZenML
        _debug("installing the zenml CLI graft failed; ZenML is untouched", exc=True)


def uninstall() -> None:
    """Remove the finder (used once grafting is done, and by tests)."""
    try:
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _GraftFinder)]
    except Exception:  # noqa: BLE001 - the hook never raises into ZenML  # pragma: no cover - meta_path is a plain list
        _debug("removing the zenml CLI finder failed", exc=True)


class _GraftFinder:
    """A meta-path finder that only watches ZenML's CLI modules and wraps their loader."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in _WATCHED:
            return None
        try:
            spec = None
            for finder in sys.meta_path:
                if finder is self or isinstance(finder, _GraftFinder):
                    continue
                find = getattr(finder, "find_spec", None)
                if find is None:
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    break
            if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
                return spec
            spec.loader = _GraftingLoader(spec.loader, fullname)
            return spec
        except Exception:  # noqa: BLE001 - the hook never raises into ZenML
            _debug("could not wrap %s; ZenML is untouched", fullname, exc=True)
            return None  # the normal import machinery takes over


class _GraftingLoader:
    """Delegates everything to ZenML's real loader and grafts once the module has run."""

    def __init__(self, inner: Any, fullname: str) -> None:
        self._inner = inner
        self._fullname = fullname

    def __getattr__(self, name: str) -> Any:  # get_source, get_resource_reader, ...
        return getattr(self._inner, name)

    def create_module(self, spec: Any) -> Any:
        return self._inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        try:
            # Tools that inspect the module should see ZenML's own loader.
            module.__loader__ = self._inner
            if getattr(module, "__spec__", None) is not None:
                module.__spec__.loader = self._inner
        except Exception:  # noqa: BLE001 - the hook never raises into ZenML  # pragma: no cover - module objects accept attributes
            pass
        self._inner.exec_module(module)  # ZenML's own errors propagate unchanged
        _graft_after(self._fullname)


def _graft_after(fullname: str) -> None:
    """Try to graft; once done (or impossible) remove the finder. Never raises."""
    try:
        if _graft():
            uninstall()
            return
        if fullname == _CLI_PACKAGE:
            # The whole CLI is loaded and there is nothing to graft onto: a layout change.
            uninstall()
            _layout_changed()
    except Exception:  # noqa: BLE001 - the hook never raises into ZenML
        uninstall()
        _debug("grafting onto the zenml CLI failed; ZenML is untouched", exc=True)
        _layout_changed()


def _layout_changed() -> None:
    _debug("zenml CLI layout not recognised: %s", FALLBACK_MESSAGE)
    # Only the user who actually typed `zenml stack deploy gcp-gitops` sees a message.
    try:
        if list(sys.argv[1:4]) == ["stack", "deploy", SUBCOMMAND]:
            sys.stderr.write(FALLBACK_MESSAGE + "\n")
    except Exception:  # noqa: BLE001 - stderr closed or argv odd: the debug log above still says it
        _debug("could not print the fallback message", exc=True)


def _find_deploy() -> tuple[Any, Any] | None:
    """(stack group, deploy command) from ZenML's root CLI, or None if the layout differs."""
    root_mod = sys.modules.get("zenml.cli.cli")
    stack_mod = sys.modules.get(_STACK_MODULE)
    stack = None
    root = getattr(root_mod, "cli", None)
    commands = getattr(root, "commands", None)
    if isinstance(commands, dict):
        stack = commands.get("stack")
    if stack is None:
        stack = getattr(stack_mod, "stack", None)
    stack_commands = getattr(stack, "commands", None)
    if not isinstance(stack_commands, dict):
        return None
    deploy = stack_commands.get("deploy")
    if deploy is None:
        return None
    return stack, deploy


def _graft() -> bool:
    """Replace `stack deploy` with the dispatcher. True when grafted (now or before)."""
    found = _find_deploy()
    if found is None:
        return False
    stack, deploy = found
    if getattr(deploy, _MARK, False):
        return True
    import click  # ZenML's CLI is loaded, so click already is

    if not isinstance(deploy, click.Command) or isinstance(deploy, click.Group):
        return False
    stack.commands["deploy"] = _make_dispatcher(deploy)
    _debug("zenml stack deploy now dispatches '%s' to zenml-gcp-gitops", SUBCOMMAND)
    return True


def _make_dispatcher(original: Any) -> Any:
    """A shallow copy of ZenML's command whose class routes `gcp-gitops` to us."""
    import copy

    base = type(original)

    class GcpGitopsDeployDispatcher(base):  # type: ignore[valid-type, misc]
        def make_context(
            self,
            info_name: str | None,
            args: list[str],
            parent: Any = None,
            **extra: Any,
        ) -> Any:
            if args and args[0] == SUBCOMMAND:
                return _our_context(info_name, args, parent, **extra)
            return super().make_context(info_name, args, parent=parent, **extra)

    dispatcher = copy.copy(original)
    dispatcher.__class__ = GcpGitopsDeployDispatcher
    dispatcher.epilog = f"{original.epilog}\n\n{EPILOG}" if original.epilog else EPILOG
    setattr(dispatcher, _MARK, True)
    return dispatcher


def _our_context(info_name: str | None, args: list[str], parent: Any, **extra: Any) -> Any:
    """The context that runs `zenml-gcp-gitops deploy ARGS` under `zenml stack deploy`.

    A one-command router group named like ZenML's `deploy` holds our command under the name
    `gcp-gitops`, so usage lines read `zenml stack deploy gcp-gitops [OPTIONS]`, and our
    group class turns `UserError`s into one line, as in `zenml-gcp-gitops`.
    """
    import click

    try:
        from .cli import _Group, cli
    except ImportError as e:  # a broken install: say so in one line, not a traceback
        raise click.ClickException(
            f"zenml-gcp-gitops cannot be loaded ({e}); reinstall it with "
            "`pip install --force-reinstall zenml-gcp-gitops`"
        ) from None

    ours = cli.commands.get("deploy")
    rest = list(args[1:])
    if ours is None:  # `deploy` not registered: let our group report it
        ours, rest = cli, ["deploy", *rest]

    class _Router(_Group):
        def invoke(self, ctx: Any) -> Any:
            # ZenML's `zenml` script points sys.stdout at stderr; `--output json` must reach
            # the real stdout.
            real = getattr(sys.modules.get("zenml_cli"), "_original_stdout", None)
            saved = sys.stdout
            if real is not None:
                sys.stdout = real
            try:
                return super().invoke(ctx)
            finally:
                sys.stdout = saved

    router = _Router(
        name=info_name or "deploy",
        commands={SUBCOMMAND: ours},
        context_settings={"help_option_names": ["-h", "--help"]},
        help=EPILOG,
    )
    return router.make_context(info_name or "deploy", [SUBCOMMAND, *rest], parent=parent, **extra)
