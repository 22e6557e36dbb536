"""Two lines of work in one deploy: gitops starts while infra still creates the database.

The program registers the outputs that need no database as one component
(`outputs.HANDOFF_TYPE`) once the cluster side exists. `HeadStart.on_event`, chained to the
infra phase's event stream, sees them and starts `GitopsPhase.head_start` in a thread: Argo CD
and the apps that read no database output. When `pulumi up` ends, the engine stops that
thread at its next wait and the gitops phase proper adds the server apps and waits for all.

A failure in either line stops the other: the head start sets `failed`, which the infra
phase's wait answers as it answers Ctrl-C (Pulumi stops cleanly); an infra failure sets
`stop`, which the head start's waits answer at their next poll. Nothing here writes the
record: the engine does, in `on_begin` and after the phase.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..config import SECRET_MARK
from ..errors import Interrupted
from ..outputs import HANDOFF_TYPE, handoff_fields

if TYPE_CHECKING:
    from ..state.record import DeploymentRecord


class Stopped(Interrupted):
    """The head start stopped because the other line of work ended first."""


def handoff_from(event: Any) -> dict[str, Any] | None:
    """The handoff outputs an engine event carries, when it is their event and they are all
    there (the component's first event, at registration, has none yet)."""
    ev = getattr(event, "res_outputs_event", None)
    if ev is None or ev.metadata.type != HANDOFF_TYPE or ev.metadata.new is None:
        return None
    outputs = dict(ev.metadata.new.outputs or {})
    required = [k for k in handoff_fields() if k not in _OPTIONAL]
    if not outputs or any(k not in outputs for k in required):
        return None
    return outputs


def _optional() -> set[str]:
    from ..outputs import InfraOutputs

    return {k for k, f in InfraOutputs.model_fields.items() if not f.is_required()}


_OPTIONAL = _optional()


def masked(outputs: dict[str, Any]) -> list[str]:
    """Keys the event shows as secret: the head start cannot use them."""
    return sorted(k for k, v in outputs.items() if v == SECRET_MARK or v == "[secret]")


class HeadStart:
    """The gitops line of work while infra runs. `run(outputs, sleep)` is the work; `sleep`
    raises `Stopped` once `stop` is set. `on_begin(outputs)` runs once, before the thread."""

    def __init__(
        self,
        run: Callable[[dict[str, Any], Callable[[float], None], dict[str, Any]], dict[str, Any]],
        on_begin: Callable[[dict[str, Any]], None],
        log: Callable[[str], None],
    ) -> None:
        self._run, self._on_begin, self._log = run, on_begin, log
        self.stop = threading.Event()  # the other line ended: stop at the next wait
        self.failed = threading.Event()  # this line failed: infra stops
        self.outputs: dict[str, Any] | None = None
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.skipped: str | None = None
        self.notes: dict[str, Any] = {}  # what it measured so far (kept when it is stopped)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def on_event(self, event: Any) -> None:
        outputs = handoff_from(event)
        if outputs is None:
            return
        with self._lock:
            if self._thread is not None or self.stop.is_set() or self.skipped or self.error:
                return
            secret = masked(outputs)
            if secret:
                self.skipped = f"the engine's events mask {', '.join(secret)}"
                self._log(f"gitops waits for infra: {self.skipped}")
                return
            self.outputs = outputs
            try:
                self._on_begin(outputs)
            except Exception as e:  # noqa: BLE001 - raised here it would end Pulumi's event stream
                # (the record could not be written): infra stops as for a gitops failure
                self.error = e
                self.failed.set()
                return
            self._thread = threading.Thread(
                target=self._main, name="gitops-head-start", daemon=True
            )
            self._thread.start()

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Stopped("stopped: infra ended first")

    def _main(self) -> None:
        try:
            self.result = self._run(dict(self.outputs or {}), self._sleep, self.notes)
        except BaseException as e:  # noqa: BLE001 - handed to the engine's thread, which reports it
            self.error = e
            if not isinstance(e, Stopped):
                self.failed.set()

    def finish(self) -> None:
        """Wait for the head start to end by itself (infra is done)."""
        with self._lock:
            thread = self._thread
        while thread is not None and thread.is_alive():
            thread.join(0.2)  # short joins keep Ctrl-C answered in the main thread

    def cancel(self) -> None:
        """Stop the head start at its next wait and wait for it (infra failed or stopped)."""
        with self._lock:
            self.stop.set()
        self.finish()


# --------------------------------------------------------------------------- in the engine


def make_head_start(
    engine: Any, plan: list[tuple[Any, bool]], record: DeploymentRecord, dry_run: bool
) -> HeadStart | None:
    """A head start for this run's infra phase, when gitops runs after it and may overlap."""
    from ..gitops.database_free import overlap_possible
    from ..state.record import PhaseRecord, _now, scrub

    if dry_run or not engine.options.overlap or not overlap_possible(engine.cfg):
        return None
    gitops = next((p for p, run in plan if p.name == "gitops" and run), None)
    infra_runs = any(p.name == "infra" and run for p, run in plan)
    if gitops is None or not infra_runs or not hasattr(gitops, "head_start"):
        return None
    reporter = engine.reporter

    def on_begin(outputs: dict[str, Any]) -> None:
        # a run killed from here on has a cluster with Argo CD in it: `destroy` must find it
        infra = record.phases.get("infra")
        if infra is not None:
            infra.outputs = {**infra.outputs, "handoff": scrub(outputs)}
        previous = record.phases.get("gitops")
        record.phases["gitops"] = PhaseRecord(
            status="started", started_at=_now(), outputs=previous.outputs if previous else {}
        )
        engine._save(record, dry_run)
        reporter.step(
            "The cluster side exists: Argo CD and the apps that need no database start now, "
            "while infra creates the rest (lines marked 'gitops')"
        )

    def run(
        outputs: dict[str, Any], sleep: Callable[[float], None], notes: dict[str, Any]
    ) -> dict[str, Any]:
        # a context of now: what preflight recorded (the zone's name servers) is in it
        ctx = engine._context(record)
        result: dict[str, Any] = gitops.head_start(ctx, outputs, sleep, notes)
        return result

    return HeadStart(run, on_begin, reporter.log)


def _message(e: BaseException) -> str:
    return getattr(e, "message", None) or f"{e.__class__.__name__}: {e}"


def run_infra(
    engine: Any, phase: Any, record: DeploymentRecord, dry_run: bool, hs: HeadStart
) -> dict[str, Any]:
    """The infra phase with gitops's head start alongside; each failure stops the other."""
    from ..errors import PhaseError

    try:
        result: dict[str, Any] = engine._run_one(phase, record, dry_run, head_start=hs)
    except BaseException as e:
        hs.cancel()
        early = _settle(engine, record, dry_run, hs, infra_error=e)
        if early is not None and not hs.started:  # the record refused gitops's start
            raise PhaseError(
                f"gitops could not start while infra ran: {_message(early)}; infra stopped "
                "cleanly and the Pulumi state holds what it created",
                getattr(early, "hint", None)
                or "fix the cause and re-run `zenml-gcp-gitops deploy`; it resumes at infra",
            ) from early
        if early is not None:  # gitops failed first: infra was stopped for it
            raise PhaseError(
                f"gitops failed while infra ran: {_message(early)}; infra stopped cleanly "
                "and what it created is recorded",
                getattr(early, "hint", None)
                or "fix the cause and re-run `zenml-gcp-gitops deploy`; it resumes at infra",
            ) from early
        if hs.started and isinstance(e, PhaseError | Interrupted):
            e.message = f"{e.message}; gitops, which ran alongside, stopped cleanly"
        raise
    try:
        # infra is done: the gitops phase adds the apps that need the database now, without
        # waiting for the head start's last waves (it waits for every app itself)
        hs.cancel()
    except KeyboardInterrupt:
        hs.cancel()
        _settle(engine, record, dry_run, hs, infra_error=Interrupted("interrupted by the user"))
        raise Interrupted(
            "gitops was interrupted; what finished is recorded",
            "re-run `zenml-gcp-gitops deploy` with the same flags to resume",
        ) from None
    early = _settle(engine, record, dry_run, hs)
    if early is not None:
        raise PhaseError(
            f"gitops failed: {_message(early)}",
            getattr(early, "hint", None)
            or "fix the cause and re-run `zenml-gcp-gitops deploy`; it resumes at gitops",
        ) from early
    return result


def _settle(
    engine: Any,
    record: DeploymentRecord,
    dry_run: bool,
    hs: HeadStart,
    infra_error: BaseException | None = None,
) -> BaseException | None:
    """Record how the head start ended; its own failure (not a stop) is returned."""
    from ..state.record import _now

    own = hs.error if hs.error is not None and not isinstance(hs.error, Stopped) else None
    if not hs.started:
        return own  # its start failed (`on_begin`): nothing ran in the cluster
    rec = record.phases.get("gitops")
    if rec is None:
        return own
    if own is not None:
        rec.status, rec.error = "failed", _message(own)
        rec.hint = getattr(own, "hint", None)
        rec.log_file = getattr(own, "log_file", None)
    elif infra_error is not None:
        rec.status = "interrupted"
        rec.error = (
            "stopped: infra did not finish, so the apps that need the database never started"
        )
    else:
        return None  # the gitops phase runs next and records itself
    rec.finished_at = _now()
    engine._save(record, dry_run)
    return own
