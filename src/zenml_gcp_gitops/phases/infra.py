"""The `infra` phase: the Pulumi program, run inline through the Automation API.

    InfraPhase().run(ctx) -> {"outputs": {...}, "secret_outputs": [...], "resource_count": N, ...}

`up` refreshes an existing stack, then updates it with live progress from the engine's event
stream. Secret outputs (Pulumi secrets) are never returned: later phases fetch them with
`read_secret_output(cfg, key)`. Provider errors are summarised (resource, operation, first
meaningful line) and the full engine log is kept in a file whose path is printed. Ctrl-C is
forwarded to the engine, which stops cleanly; the phase is then recorded as interrupted.

`ctx.options` keys this phase reads: dry_run, force, purge_state, verbose, yes, program
(callable cfg -> None, defaults to the packaged program), pulumi_root, pulumi_home, env.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import user_data_dir
from ..errors import PhaseError, UserError

if TYPE_CHECKING:
    from pulumi import automation as auto

    from ..config import DeploymentConfig
    from .base import PhaseContext, Reporter

PULUMI_ROOT_ENV = "ZENML_GCP_GITOPS_PULUMI_ROOT"
STACK_TYPE = "pulumi:pulumi:Stack"
# Resource types whose `deletionProtection` input blocks deletion, and buckets that refuse
# deletion while they hold objects unless `forceDestroy` is set.
_PROTECTABLE = ("gcp:container/cluster:Cluster", "gcp:sql/databaseInstance:DatabaseInstance")
_BUCKET = "gcp:storage/bucket:Bucket"


class LockedError(PhaseError):
    """Another deploy holds the state lock (or a crashed one left it behind)."""

    owned_by_another_run = True  # the engine leaves the record to the run holding the lock


# --------------------------------------------------------------------------- pulumi setup


def gcp_plugin_version() -> str:
    """The pulumi-gcp provider plugin version that matches the installed `pulumi_gcp` SDK."""
    return metadata.version("pulumi_gcp")


def _plugin_versions() -> dict[str, str]:
    out = {"gcp": gcp_plugin_version()}
    with contextlib.suppress(metadata.PackageNotFoundError):
        out["random"] = metadata.version("pulumi_random")
    return out


def find_pulumi_root(options: dict[str, Any]) -> str | None:
    """Where the Pulumi CLI lives: flag/option, env, our data dir; None means `pulumi` on PATH."""
    for candidate in (options.get("pulumi_root"), os.environ.get(PULUMI_ROOT_ENV)):
        if candidate:
            return str(candidate)
    ours = user_data_dir() / "pulumi"
    if (ours / "bin" / "pulumi").exists():
        return str(ours)
    return None


def pulumi_command(options: dict[str, Any]) -> auto.PulumiCommand:
    """The CLI to drive. Version policy is enforced by preflight, with a clearer message."""
    from pulumi import automation as auto

    root = find_pulumi_root(options)
    try:
        return auto.PulumiCommand(root=root, skip_version_check=True)
    except (FileNotFoundError, PermissionError, OSError):
        raise UserError(
            "the Pulumi CLI was not found" + (f" under {root}" if root else " on PATH"),
            "run `zenml-gcp-gitops deploy` (preflight offers to install it) or install it from "
            "https://www.pulumi.com/docs/install/",
        ) from None


def secrets_provider(cfg: DeploymentConfig) -> str:
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


def _program(options: dict[str, Any]) -> Callable[..., None]:
    program = options.get("program")
    if program is not None:
        return program  # type: ignore[no-any-return]
    import importlib

    from ..resources import program_package

    module = importlib.import_module(program_package().__name__ + ".program")
    return module.build  # type: ignore[no-any-return]


@dataclass
class StackHandle:
    stack: auto.Stack
    existed: bool
    work_dir: Path
    state_url: str


def open_stack(
    cfg: DeploymentConfig,
    options: dict[str, Any],
    *,
    program_cfg: DeploymentConfig | None = None,
    create: bool = True,
    state_url: str | None = None,
    extra_env: dict[str, str] | None = None,
    adopt: dict[str, str] | None = None,
) -> StackHandle | None:
    """Create or select the stack. With create=False, None when it does not exist."""
    from pulumi import automation as auto

    pcfg = program_cfg or cfg
    url = state_url or cfg.state_url
    if url.startswith("file://"):
        Path(url.removeprefix("file://")).expanduser().mkdir(parents=True, exist_ok=True)
    work_dir = Path(options.get("work_dir") or user_data_dir() / "workspaces" / cfg.name)
    if state_url:
        work_dir = Path(tempfile.mkdtemp(prefix="zgg-preview-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    env = {
        "PULUMI_BACKEND_URL": url,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "GOOGLE_PROJECT": cfg.project,
        "GOOGLE_REGION": cfg.region,
        **dict(options.get("env") or {}),
        **(extra_env or {}),
    }
    provider = "passphrase" if state_url else secrets_provider(cfg)
    if provider == "passphrase":
        require_passphrase(cfg, {**os.environ, **env})
    ws_opts = auto.LocalWorkspaceOptions(
        work_dir=str(work_dir),
        pulumi_home=options.get("pulumi_home"),
        project_settings=auto.ProjectSettings(
            name=cfg.names.pulumi_project, runtime="python", backend=auto.ProjectBackend(url=url)
        ),
        pulumi_command=options.get("pulumi_command") or pulumi_command(options),
        secrets_provider=provider,
        env_vars=env,
        # resolved when Pulumi runs it: status/outputs/unlock never import the program
        program=lambda: _program(options)(pcfg, adopt) if adopt else _program(options)(pcfg),
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
        raise _command_error(cfg, e, "select") from None
    return StackHandle(stack, existed, work_dir, url)


# --------------------------------------------------------------------------- events, errors


_GO_PREFIX = re.compile(r"^\s*(error:\s*)?(\S+\.go:\d+:\s*)?(sdk\.helper_schema:\s*)?")
_NOISE = re.compile(
    r"^(\s*$|\s*(error: )?update failed|\s*Resources:|\s*Duration:|.*(Updating|Destroying|Refreshing) \()"
)


def first_meaningful_line(message: str) -> str:
    for raw in message.splitlines():
        line = _GO_PREFIX.sub("", raw).strip()
        if line and not _NOISE.match(line):
            return line[:300]
    return message.strip()[:300]


def classify(message: str) -> str | None:
    """A hint for the failure classes users hit on a fresh project."""
    m = message.lower()
    if "quota" in m and ("exceed" in m or "insufficient" in m):
        return "a quota is exhausted: request an increase (IAM & Admin > Quotas) or choose another --region"
    if "constraints/" in m or "organization policy" in m or "org policy" in m:
        return "an organization policy forbids this: ask your org admin for an exception, or change the setting it names"
    if "service_disabled" in m or "has not been used in project" in m or "it is disabled" in m:
        return "an API is disabled: the program enables what it needs; wait a minute for it to propagate, then re-run"
    if "deletion_protection" in m or "deletion protection" in m:
        return "the resource is deletion-protected: `zenml-gcp-gitops destroy --force` lifts the protection first"
    if "permission" in m and ("denied" in m or "403" in m):
        return "your account lacks a permission: the message names it (roles/owner on the project is simplest)"
    return None


@dataclass
class Failure:
    urn: str
    type: str
    op: str
    message: str = ""

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]

    def line(self) -> str:
        short_type = self.type.rsplit(":", 1)[-1]
        return f"{short_type} {self.name}: {self.op} failed: {first_meaningful_line(self.message)}"


_TIMED_OPS = ("create", "update", "replace", "create-replacement")


@dataclass
class EventTracker:
    """Turns the engine's event stream into progress and, on failure, a short summary."""

    reporter: Reporter
    total: int | None = None
    verb: str = "update"
    done: int = 0
    changes: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    diagnostics: dict[str, list[str]] = field(default_factory=dict)
    general_errors: list[str] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # real durations per resource type (created or updated), for the duration estimate
    started: dict[str, float] = field(default_factory=dict)
    durations: dict[str, list[float]] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic

    def __call__(self, event: Any) -> None:
        with self.lock:
            self._handle(event)

    def _handle(self, event: Any) -> None:
        if event.resource_pre_event is not None:
            md = event.resource_pre_event.metadata
            if md.type == STACK_TYPE:
                return
            op = getattr(md.op, "value", str(md.op))
            self.started[md.urn] = self.clock()
            current = f"{op} {md.type.rsplit(':', 1)[-1]} {md.urn.rsplit('::', 1)[-1]}"
            self.reporter.progress(self.done, self.total, current)
        elif event.res_outputs_event is not None:
            md = event.res_outputs_event.metadata
            if md.type == STACK_TYPE:
                return
            self.done += 1
            if self.total is not None and self.done > self.total:
                self.total = self.done
            op = getattr(md.op, "value", str(md.op))
            start = self.started.pop(md.urn, None)
            if start is not None and op in _TIMED_OPS:
                self.durations.setdefault(md.type, []).append(self.clock() - start)
            self.reporter.progress(self.done, self.total, f"{op} {md.urn.rsplit('::', 1)[-1]}")
        elif event.diagnostic_event is not None:
            d = event.diagnostic_event
            text = (d.message or "").rstrip()
            self.log_lines.append(f"{d.severity}: {text}")
            if d.severity == "error":
                if d.urn:
                    self.diagnostics.setdefault(d.urn, []).append(text)
                else:
                    self.general_errors.append(text)
        elif event.res_op_failed_event is not None:
            md = event.res_op_failed_event.metadata
            self.failures.append(Failure(md.urn, md.type, getattr(md.op, "value", str(md.op))))
        elif event.summary_event is not None:
            self.changes = {
                getattr(k, "value", str(k)): v
                for k, v in event.summary_event.resource_changes.items()
            }

    def summary(self) -> list[str]:
        failures = list(self.failures)
        known = {f.urn for f in failures}
        for urn in self.diagnostics:
            if urn not in known:
                failures.append(
                    Failure(urn, urn.split("::")[2].split("$")[-1] if "::" in urn else "", "update")
                )
        lines = []
        for f in failures:
            f.message = "\n".join(self.diagnostics.get(f.urn, [])) or f.message
            lines.append(f.line())
        if not lines:
            lines = [first_meaningful_line(e) for e in self.general_errors[:3]]
        return lines


def _log_path(cfg: DeploymentConfig, op: str) -> Path:
    path = user_data_dir() / "logs" / f"{cfg.name}-{op}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _failed(
    cfg: DeploymentConfig, err: Exception, op: str, tracker: EventTracker, log: Path | None = None
) -> UserError:
    """Keep everything the engine said in the log file, then summarise it in one line."""
    log = log or _log_path(cfg, op)
    with log.open("a") as f:
        f.write("\n".join(tracker.log_lines) + "\n" + str(err) + "\n")
    return _command_error(cfg, err, op, tracker, log)


def _lock_message(cfg: DeploymentConfig, text: str) -> LockedError:
    m = re.search(
        r"^\s*(\S+/\.pulumi/locks/\S+): created by (\S+) \(pid (\d+)\) at (\S+)", text, re.M
    )
    where = (
        f" ({m.group(1)}, held by {m.group(2)} pid {m.group(3)} since {m.group(4)})" if m else ""
    )
    return LockedError(
        f"another deploy of '{cfg.name}' holds the Pulumi state lock{where}",
        "wait for it to finish; if no deploy is running (a crashed one left the lock), run "
        "`zenml-gcp-gitops unlock` with the same --project/--name/--state",
    )


def _command_error(
    cfg: DeploymentConfig,
    err: Exception,
    op: str,
    tracker: EventTracker | None = None,
    log: Path | None = None,
) -> UserError:
    from pulumi import automation as auto

    text = str(err)
    if isinstance(err, auto.ConcurrentUpdateError) or "currently locked by" in text:
        return _lock_message(cfg, text)
    lines = tracker.summary() if tracker is not None else []
    if not lines:
        stderr = getattr(err, "stderr", None) or text
        lines = [first_meaningful_line(stderr)]
    hint = classify("\n".join(lines)) or ""
    where = f"full log: {log}" if log else ""
    e = PhaseError(
        f"pulumi {op} failed: " + "; ".join(lines),
        "; ".join(x for x in (hint, where) if x) or None,
    )
    e.log_file = str(log) if log else None  # type: ignore[attr-defined]
    return e


# --------------------------------------------------------------------------- interrupts


def _pulumi_children(before: set[int]) -> list[Any]:
    import psutil

    try:
        return [p for p in psutil.Process().children(recursive=False) if p.pid not in before]
    except psutil.Error:
        return []


def _child_pids() -> set[int]:
    import psutil

    try:
        return {p.pid for p in psutil.Process().children(recursive=False)}
    except psutil.Error:
        return set()


def _terminal_delivered_sigint() -> bool:
    """True when Ctrl-C on our terminal already reached the CLI (same foreground group)."""
    try:
        fd = os.open("/dev/tty", os.O_RDONLY)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(fd)


def run_interruptible(fn: Callable[[], Any], reporter: Reporter) -> Any:
    """Run a Pulumi operation in a worker thread so Ctrl-C can be forwarded to the engine.

    The engine stops after in-flight resource operations and releases the lock; we then raise
    Interrupted so the phase is recorded as such. Pulumi's `cancel` does not work on
    self-managed backends, so SIGINT is the clean way to stop.
    """
    from ..engine import Interrupted

    # The inline program's language host runs in this process; when a resource fails, grpc
    # logs the program's exception as a traceback. The summary says it better.
    logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
    if threading.current_thread() is not threading.main_thread():
        return fn()
    before = _child_pids()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as e:
            box["error"] = e

    interrupted = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        first = not interrupted.is_set()
        interrupted.set()
        reporter.step(
            "Interrupt received: waiting for Pulumi to stop cleanly (it keeps the state consistent)"
        )
        if first and _terminal_delivered_sigint():
            return  # the CLI got the same Ctrl-C from the terminal
        for child in _pulumi_children(before):
            with contextlib.suppress(Exception):
                child.send_signal(signal.SIGINT)

    worker = threading.Thread(target=target, name="pulumi-op", daemon=True)
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        worker.start()
        while worker.is_alive():
            worker.join(0.1)
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted.is_set():
        raise Interrupted(
            "interrupted: Pulumi stopped cleanly and the state holds what was created",
            "re-run `zenml-gcp-gitops deploy` with the same flags to resume",
        )
    if "error" in box:
        raise box["error"]
    return box.get("result")


# --------------------------------------------------------------------------- operations


def _configure(handle: StackHandle, cfg: DeploymentConfig, reporter: Reporter) -> None:
    from pulumi import automation as auto

    stack = handle.stack
    stack.set_all_config(
        {"gcp:project": auto.ConfigValue(cfg.project), "gcp:region": auto.ConfigValue(cfg.region)}
    )
    for plugin, version in _plugin_versions().items():
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


def _resource_count(handle: StackHandle) -> int | None:
    try:
        for s in handle.stack.workspace.list_stacks():
            if s.name == handle.stack.name:
                return s.resource_count
    except Exception:
        return None
    return None


def _exported_resources(handle: StackHandle) -> list[dict[str, Any]]:
    deployment = handle.stack.export_stack().deployment or {}
    return list(deployment.get("resources") or [])


def protected_resources(resources: list[dict[str, Any]]) -> list[str]:
    """Resources a plain destroy cannot delete: deletion-protected GKE/SQL, non-force buckets."""
    out = []
    for r in resources:
        typ = r.get("type", "")
        inputs = r.get("inputs") or {}
        name = inputs.get("name") or r.get("urn", "").rsplit("::", 1)[-1]
        short = typ.rsplit(":", 1)[-1]
        if (typ in _PROTECTABLE and inputs.get("deletionProtection") is not False) or (
            typ == _BUCKET and not inputs.get("forceDestroy")
        ):
            out.append(f"{short} {name}")
        elif r.get("protect"):
            out.append(f"{short} {name} (protect)")
    return out


def _up(
    handle: StackHandle, cfg: DeploymentConfig, reporter: Reporter, verbose: bool, op: str = "up"
) -> tuple[Any, EventTracker, Path]:
    from pulumi import automation as auto

    log = _log_path(cfg, op)
    tracker = EventTracker(reporter, total=_resource_count(handle) or None)
    with log.open("w") as f:

        def on_output(line: str) -> None:
            f.write(line + "\n")
            f.flush()
            reporter.log(line)

        try:
            result = run_interruptible(
                lambda: handle.stack.up(
                    on_event=tracker, on_output=on_output, on_error=on_output, color="never"
                ),
                reporter,
            )
        except auto.CommandError as e:
            f.flush()
            raise _failed(cfg, e, op, tracker, log) from None
    return result, tracker, log


def _changes_text(changes: dict[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(changes.items())) or "no changes"


def split_outputs(outputs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(plain outputs without secrets, names of the secret ones)."""
    plain = {k: v.value for k, v in outputs.items() if not v.secret}
    secret = sorted(k for k, v in outputs.items() if v.secret)
    return plain, secret


# What `destroy` leaves in GCP (it cannot delete them) and a later deploy imports.
RETAINED_TYPES = {
    "kms_key_ring": "gcp:kms/keyRing:KeyRing",
    "kms_key": "gcp:kms/cryptoKey:CryptoKey",
    "wif_pool": "gcp:iam/workloadIdentityPool:WorkloadIdentityPool",
    "wif_provider": "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider",
}


def with_github_ids(ctx: PhaseContext) -> DeploymentConfig:
    """The config with `github_repo`'s immutable IDs: from the config, else as recorded by an
    earlier deploy, else looked up once now (and recorded by the caller)."""
    cfg = ctx.cfg
    if not cfg.github_repo or (cfg.github_repo_id and cfg.github_owner_id):
        return cfg
    known = ctx.recorded.get("infra", {}).get("github") or {}
    if known.get("repo") == cfg.github_repo and known.get("repo_id") and known.get("owner_id"):
        rid, oid = int(known["repo_id"]), int(known["owner_id"])
    else:
        from ..gh import GhClient, lookup_repo_ids

        ctx.reporter.step(f"Looking up the GitHub IDs of {cfg.github_repo}")
        rid, oid = lookup_repo_ids(cfg.github_repo, ctx.options.get("gh") or GhClient())
    return cfg.model_copy(update={"github_repo_id": rid, "github_owner_id": oid})


def _github_record(cfg: DeploymentConfig) -> dict[str, Any]:
    if not cfg.github_repo:
        return {}
    return {"repo": cfg.github_repo, "repo_id": cfg.github_repo_id, "owner_id": cfg.github_owner_id}


class InfraPhase:
    name = "infra"

    def run(self, ctx: PhaseContext) -> dict[str, Any]:
        cfg, opts, rep = ctx.cfg, ctx.options, ctx.reporter
        if opts.get("dry_run"):
            return self._preview(ctx)
        pcfg = with_github_ids(ctx)
        rep.step(f"Opening stack {cfg.names.pulumi_stack} in {cfg.state_url}")
        handle = open_stack(cfg, opts, program_cfg=pcfg)
        assert handle is not None
        adopt = self._adoptable(ctx, handle)
        if adopt:
            rep.step(f"Adopting {', '.join(adopt.values())}, kept by GCP from an earlier deploy")
            handle = open_stack(cfg, opts, program_cfg=pcfg, adopt=adopt)
            assert handle is not None
        _configure(handle, cfg, rep)
        if handle.existed and (_resource_count(handle) or 0) > 0:
            rep.step("Refreshing the stack against GCP")
            log = _log_path(cfg, "refresh")
            tracker = EventTracker(rep, total=_resource_count(handle))
            from pulumi import automation as auto

            try:
                run_interruptible(
                    lambda: handle.stack.refresh(on_event=tracker, color="never"), rep
                )
            except auto.CommandError as e:
                raise _failed(cfg, e, "refresh", tracker, log) from None
        rep.step("Updating the stack")
        result, tracker, log = _up(handle, cfg, rep, bool(opts.get("verbose")))
        rep.step(f"{tracker.done} resources ({_changes_text(tracker.changes)}); engine log: {log}")
        plain, secret = split_outputs(result.outputs)
        from ..outputs import InfraOutputs

        # validate the contract with every value, but keep only the plain ones
        InfraOutputs.from_mapping(
            {k: v.value for k, v in result.outputs.items()}, source="stack outputs"
        )
        from ..estimate.durations import summarize

        return {
            "outputs": plain,
            "secret_outputs": secret,
            "resource_durations": summarize(tracker.durations),
            "stack": handle.stack.name,
            "backend": handle.state_url,
            "resource_count": tracker.done or _resource_count(handle),
            "changes": tracker.changes,
            "log_file": str(log),
            "github": _github_record(pcfg),
        }

    def _adoptable(self, ctx: PhaseContext, handle: StackHandle) -> dict[str, str]:
        """What preflight found retained in GCP and the stack does not hold: imported."""
        retained: dict[str, str] = ctx.recorded.get("preflight", {}).get("retained") or {}
        if not retained:
            return {}
        held = {r.get("type") for r in _exported_resources(handle)} if handle.existed else set()
        return {
            k: v
            for k, v in retained.items()
            if k in RETAINED_TYPES and RETAINED_TYPES[k] not in held
        }

    def _preview(self, ctx: PhaseContext) -> dict[str, Any]:
        import shutil

        cfg, opts, rep = ctx.cfg, ctx.options, ctx.reporter
        pre = ctx.recorded.get("preflight", {})
        handle = None
        if pre.get("state_ready") is not False:
            handle = open_stack(cfg, opts, create=False)
        scratch: list[str] = []
        try:
            if handle is None:
                # No state (or no stack) yet: preview against an empty throwaway backend, where
                # everything is a create. Nothing is written to the real backend.
                rep.step("No stack yet: previewing against an empty throwaway backend")
                scratch.append(tempfile.mkdtemp(prefix="zgg-preview-state-"))
                handle = open_stack(
                    cfg,
                    opts,
                    state_url="file://" + scratch[0],
                    extra_env={"PULUMI_CONFIG_PASSPHRASE": os.urandom(16).hex()},
                )
                assert handle is not None
                scratch.append(str(handle.work_dir))
                _configure(handle, cfg, rep)
            return self._run_preview(handle, cfg, rep, empty_state=bool(scratch))
        finally:
            for d in scratch:
                shutil.rmtree(d, ignore_errors=True)

    def _run_preview(
        self, handle: StackHandle, cfg: DeploymentConfig, rep: Reporter, empty_state: bool
    ) -> dict[str, Any]:
        from pulumi import automation as auto

        tracker = EventTracker(rep, total=_resource_count(handle) or None)
        rep.step("Previewing changes (nothing is modified)")
        try:
            result = run_interruptible(
                lambda: handle.stack.preview(on_event=tracker, color="never"), rep
            )
        except auto.CommandError as e:
            raise _failed(cfg, e, "preview", tracker) from None
        changes = {getattr(k, "value", str(k)): v for k, v in result.change_summary.items()}
        return {
            "preview": {
                "create": changes.get("create", 0),
                "update": changes.get("update", 0),
                "replace": changes.get("replace", 0) + changes.get("create-replacement", 0),
                "delete": changes.get("delete", 0),
                "same": changes.get("same", 0),
            },
            "empty_state": empty_state,
        }

    def status(self, ctx: PhaseContext) -> dict[str, Any]:
        handle = open_stack(ctx.cfg, ctx.options, create=False)
        if handle is None:
            return {"stack": None, "reachable": True, "resources": 0}
        info = None
        for s in handle.stack.workspace.list_stacks():
            if s.name == handle.stack.name:
                info = s
        last = handle.stack.info(show_secrets=False)
        return {
            "stack": handle.stack.name,
            "backend": handle.state_url,
            "reachable": True,
            "resources": info.resource_count if info else None,
            "update_in_progress": info.update_in_progress if info else None,
            "last_update": {
                "result": last.result,
                "kind": last.kind,
                "end_time": str(last.end_time),
            }
            if last
            else None,
        }

    def check_destroy(self, ctx: PhaseContext) -> None:
        """Refuse, before anything is torn down, to silently lift deletion protection."""
        if ctx.options.get("force"):
            return
        handle = open_stack(ctx.cfg, ctx.options, create=False)
        if handle is None:
            return
        protected = protected_resources(_exported_resources(handle))
        if protected:
            raise UserError(
                f"{len(protected)} resources are protected against deletion: {', '.join(protected)}",
                "re-run with --force to lift deletion protection (one `pulumi up`) and delete "
                "them; the data in Cloud SQL and the buckets is lost",
            )

    def destroy(self, ctx: PhaseContext) -> None:
        from pulumi import automation as auto

        cfg, opts, rep = ctx.cfg, ctx.options, ctx.reporter
        handle = open_stack(cfg, opts, create=False)
        if handle is None:
            rep.step("No Pulumi stack: nothing to destroy")
            return
        resources = _exported_resources(handle)
        protected = protected_resources(resources)
        if protected:
            if not opts.get("force"):
                self.check_destroy(ctx)
            rep.step(f"--force: lifting deletion protection on {', '.join(protected)}")
            unprotected = with_github_ids(ctx).model_copy(
                update={"deletion_protection": False, "force_destroy_buckets": True}
            )
            lifted = open_stack(cfg, opts, program_cfg=unprotected, create=False)
            assert lifted is not None
            _configure(lifted, cfg, rep)
            _up(lifted, cfg, rep, bool(opts.get("verbose")), op="unprotect")
        log = _log_path(cfg, "destroy")
        tracker = EventTracker(rep, total=len(resources) or None)
        rep.step(f"Destroying {len(resources)} resources")
        with log.open("w") as f:

            def on_output(line: str) -> None:
                f.write(line + "\n")
                rep.log(line)

            try:
                run_interruptible(
                    lambda: handle.stack.destroy(
                        on_event=tracker, on_output=on_output, color="never"
                    ),
                    rep,
                )
            except auto.CommandError as e:
                f.flush()
                raise _failed(cfg, e, "destroy", tracker, log) from None

    def purge(self, ctx: PhaseContext) -> dict[str, Any]:
        """destroy --purge-state: drop the (now empty) stack and its history from the backend."""
        handle = open_stack(ctx.cfg, ctx.options, create=False)
        if handle is None:
            return {"stack": "absent"}
        ctx.reporter.step(f"Removing the stack {handle.stack.name} from {handle.state_url}")
        handle.stack.workspace.remove_stack(handle.stack.name)
        return {"stack": "removed"}


def read_secret_output(
    cfg: DeploymentConfig, key: str, options: dict[str, Any] | None = None
) -> str | None:
    """A Pulumi secret output, read from the stack when a later phase needs it (never recorded)."""
    handle = open_stack(cfg, dict(options or {}), create=False)
    if handle is None:
        return None
    value = handle.stack.outputs().get(key)
    return None if value is None else value.value


def stack_outputs(cfg: DeploymentConfig, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """`zenml-gcp-gitops outputs`: the OutputMap of the deployed stack."""
    handle = open_stack(cfg, dict(options or {}), create=False)
    if handle is None:
        raise UserError(
            f"no Pulumi stack '{cfg.names.pulumi_stack}' in {cfg.state_url}",
            "deploy first, or pass the --project/--name/--state the deployment used",
        )
    try:
        return dict(handle.stack.outputs())
    except Exception as e:
        raise _command_error(cfg, e, "stack output") from None


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
        from google.cloud import storage  # type: ignore[attr-defined,unused-ignore]

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
