"""`pause` / `resume` against a deployment: the lease, the record journal and the phases."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ServiceUnavailable, UserError
from .pause import KEY, PauseDeps, pause, resume
from .writers import APP, Waits

if TYPE_CHECKING:
    from ..config import DeploymentConfig
    from ..gitops.kube import Kube
    from ..phases.base import Phase, PhaseContext
    from ..run_options import RunOptions, Services
    from ..state.record import DeploymentRecord, RecordStore


class Engine(Protocol):
    """What a pause or resume uses of `engine.Engine` (which calls `run` with itself)."""

    _lease: Any

    @property
    def cfg(self) -> DeploymentConfig: ...
    @property
    def options(self) -> RunOptions: ...
    @property
    def services(self) -> Services: ...
    @property
    def reporter(self) -> Any: ...
    @property
    def store(self) -> RecordStore: ...
    @property
    def phases(self) -> list[Phase]: ...
    def lease(self) -> Any: ...
    def load_record(self) -> DeploymentRecord | None: ...
    def _context(self, record: DeploymentRecord) -> PhaseContext: ...
    def _infra_with_secrets(self, record: DeploymentRecord) -> Any: ...
    def _run_one(self, phase: Phase, record: DeploymentRecord, dry_run: bool) -> dict[str, Any]: ...


def _plain(value: Any) -> Any:
    """The value as the API server stores it: keys set to null are dropped."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def apply_desired(kube: Kube, cfg: Any, outputs: Any, paused: bool, waits: Waits) -> None:
    """Hand Argo CD the app-of-apps as `paused` says, and wait until every app is Healthy."""
    from ..gitops.bootstrap import apply_stack
    from ..gitops.health import WaitOptions, wait_for_apps
    from ..gitops.render import render

    rendered = render(cfg, outputs, paused=paused)
    opts = WaitOptions(wave_timeout=waits.timeout, poll=waits.poll)
    apply_stack(kube, cfg, rendered, None, opts, sleep=waits.sleep, clock=waits.clock)
    # the children's verdicts count once the root has handed them the new spec
    ns = cfg.names.namespaces["argocd"]
    waits.until(
        lambda: [
            a.name
            for a in rendered.apps
            if _plain(((kube.get(*APP, a.name, ns) or {}).get("spec") or {}).get("source"))
            != _plain(a.manifest["spec"]["source"])
        ],
        lambda behind: ServiceUnavailable(
            f"Argo CD did not update {', '.join(behind)} within {int(waits.timeout)}s",
            f"check the root app: `kubectl -n {ns} get applications`; then re-run",
        ),
    )
    wait_for_apps(kube, cfg, rendered, None, opts, sleep=waits.sleep, clock=waits.clock)


def run(engine: Engine, action: str, by: str = "", force: bool = False) -> dict[str, Any]:
    cfg = engine.cfg
    if cfg.gitops_repo:
        raise UserError(
            f"{action} changes the desired state Argo CD reads, and it is in {cfg.gitops_repo}",
            "pause/resume manage the embedded app-of-apps only; scale the servers in your repo",
        )
    with engine.lease() as lease:
        engine._lease = lease
        try:
            lease.acquire_remote()
            return _run(engine, action, by, force)
        finally:
            engine._lease = None


def _record(engine: Engine) -> DeploymentRecord:
    record = engine.load_record()
    if record is None or record.phases.get("gitops", None) is None:
        raise UserError(
            f"deployment '{engine.cfg.name}' has no deployed stack to pause or resume",
            "deploy it first (`zenml-gcp-gitops deploy`)",
        )
    return record


def _run(engine: Engine, action: str, by: str, force: bool) -> dict[str, Any]:
    from ..ops.context import kube_of

    record = _record(engine)
    services, options = engine.services, engine.options
    kube_cache: list[Kube] = []

    def kube() -> Kube:
        if not kube_cache:
            kube_cache.append(kube_of(_record(engine), services))
        return kube_cache[0]

    def load() -> dict[str, Any] | None:
        entry = _record(engine).operations.get(KEY)
        return dict(entry) if entry else None

    def journal(entry: dict[str, Any] | None) -> None:
        rec = _record(engine)
        if entry is None:
            rec.operations.pop(KEY, None)
        else:
            rec.operations[KEY] = entry
        engine.store.save(rec)

    def phase(name: str) -> Any:
        return next(p for p in engine.phases if p.name == name)

    def converge_infra() -> None:
        engine._run_one(phase("infra"), _record(engine), False)  # reads the journal

    def desired() -> None:
        rec = _record(engine)
        ctx = engine._context(rec)
        ctx._infra = engine._infra_with_secrets(rec)
        apply_desired(kube(), engine.cfg, ctx.infra, ctx.paused, waits)

    def stack_ctx() -> Any:
        rec = _record(engine)
        ctx = engine._context(rec)
        ctx._infra = engine._infra_with_secrets(rec)
        return ctx

    def runs() -> list[str]:
        from ..phases.register import admin_credentials, zenml_url_of
        from ..zenml.session import connect
        from .pause import runs_in_progress

        ctx = stack_ctx()
        store = connect(zenml_url_of(ctx), admin_credentials(ctx), timeout=options.timeout)
        return runs_in_progress(store, engine.cfg.names.zenml_stack)

    def wait_running() -> None:
        from ..gitops.health import url_reachable

        ctx = stack_ctx()
        urls = [ctx.infra.zenml_url + "/health", ctx.infra.mlflow_url + "/health"]
        waits.until(
            lambda: [u for u in urls if not url_reachable(u)],
            lambda down: UserError(
                f"the servers do not answer: {', '.join(down)}",
                "`zenml-gcp-gitops status` shows Argo CD's view; re-run `resume`",
            ),
        )

    def check_stack() -> dict[str, Any]:
        return dict(phase("register").status(stack_ctx()))

    from ..gitops.health import WaitOptions

    wopts = WaitOptions.from_options(options)
    waits = services.pause_waits or Waits(timeout=wopts.wave_timeout, poll=wopts.poll)
    live = not options.no_servers
    deps = PauseDeps(
        cfg=engine.cfg,
        kube=kube,
        log=engine.reporter.log,
        waits=waits,
        load=load,
        journal=journal,
        apply_desired=desired,
        converge_infra=converge_infra,
        runs_in_progress=runs if live else None,
        wait_running=wait_running if live else None,
        check_stack=check_stack if live else None,
    )
    del record
    if action == "pause":
        return {"paused": pause(deps, by=by, force=force)}
    return resume(deps)
