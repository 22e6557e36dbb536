"""The phase orchestrator: runs preflight -> infra -> gitops -> register -> ci, records each
result in the deployment record, resumes where a failed or interrupted run stopped, and tears
everything down in reverse.

The record itself (model and stores) is in `state/record.py`, the progress display in `progress.py`.
This module stays a little over 500 lines because deploy, status and destroy share the
record, the lease and the per-phase bookkeeping; splitting them would split that state."""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import user_data_dir
from .errors import Interrupted, PhaseError, UserError, known_error
from .infra.events import stale_lock
from .phases.base import PhaseContext
from .progress import PlainReporter
from .run_options import RunOptions, Services
from .state.record import (
    DeploymentRecord,
    PhaseRecord,
    PhaseStatus,
    RecordStore,
    _now,
    config_hash,
    make_lease,
    record_store,
    scrub,
)

if TYPE_CHECKING:
    from .config import DeploymentConfig
    from .phases.base import Phase


# --------------------------------------------------------------------------- phases


def default_phases() -> list[Phase]:
    """The five phases, imported lazily (gitops/register/ci pull in kubernetes and zenml)."""
    from .phases.ci import CiPhase
    from .phases.gitops import GitopsPhase
    from .phases.infra import InfraPhase
    from .phases.preflight import PreflightPhase
    from .phases.register import RegisterPhase

    return [PreflightPhase(), InfraPhase(), GitopsPhase(), RegisterPhase(), CiPhase()]


def crash_log(cfg: DeploymentConfig, phase: str, exc: BaseException) -> Path:
    """Write an unexpected error's traceback to a log file (the user sees one line + the path)."""
    path = user_data_dir() / "logs" / f"{cfg.name}-{phase}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(traceback.format_exception(exc)))
    return path


class Engine:
    """Runs phases in order against one deployment record."""

    def __init__(
        self,
        cfg: DeploymentConfig,
        *,
        phases: list[Phase] | None = None,
        store: RecordStore | None = None,
        reporter: Any = None,
        options: RunOptions | None = None,
        services: Services | None = None,
        phase_factory: Callable[[], list[Phase]] = default_phases,
    ) -> None:
        self.cfg = cfg
        self._phases = phases
        self._phase_factory = phase_factory
        self.options = options or RunOptions()
        self.services = services or Services()
        self._dry_run = False
        self._store = store
        self.reporter = reporter or PlainReporter(verbose=self.options.verbose)
        self._secret_infra: Any = None
        self._lease: Any = None
        self._save_lock = threading.RLock()

    @property
    def phases(self) -> list[Phase]:
        if self._phases is None:
            self._phases = self._phase_factory()
        return self._phases

    @property
    def store(self) -> RecordStore:
        if self._store is None:
            self._store = record_store(self.cfg, self.services.storage_client)
        return self._store

    def load_record(self) -> DeploymentRecord | None:
        return self.store.load()

    def _context(self, record: DeploymentRecord) -> PhaseContext:
        return PhaseContext(
            cfg=self.cfg,
            recorded=record.recorded_outputs(),
            reporter=self.reporter,
            options=self.options,
            services=self.services,
            dry_run=self._dry_run,
            operations=record.operations,
        )

    def _names(self) -> list[str]:
        return [p.name for p in self.phases]

    def _check_phase(self, name: str | None, flag: str) -> None:
        if name is not None and name not in self._names():
            raise UserError(
                f"{flag} {name} is not a phase", f"choose one of: {', '.join(self._names())}"
            )

    def plan_run(
        self, record: DeploymentRecord | None, from_phase: str | None, stop_after: str | None
    ) -> list[tuple[Phase, bool]]:
        """(phase, run?) in order: resume from the first unfinished phase of the last run."""
        names = self._names()
        self._check_phase(from_phase, "--from-phase")
        self._check_phase(stop_after, "--stop-after")
        end = names.index(stop_after) if stop_after else len(names) - 1
        if from_phase is not None:
            start = names.index(from_phase)
        elif record is None or record.config_hash != config_hash(self.cfg):
            start = 0  # new deployment, or the config changed: converge everything
        else:
            unfinished = [
                i
                for i, n in enumerate(names)
                if record.phases.get(n, PhaseRecord()).status != "succeeded"
            ]
            start = unfinished[0] if unfinished else 0
            if start > end:
                start = 0  # everything up to --stop-after is done: converge it again
        if start > end:
            raise UserError(
                f"--from-phase {names[start]} comes after --stop-after {names[end]}",
                f"phases run in this order: {' -> '.join(names)}",
            )
        # preflight always runs: it is cheap and sets up the state backend for the rest
        return [
            (p, i <= end and (i >= start or p.name == "preflight"))
            for i, p in enumerate(self.phases)
        ][: end + 1]

    def deploy(
        self,
        *,
        from_phase: str | None = None,
        stop_after: str | None = None,
        dry_run: bool = False,
        resume: bool = False,
    ) -> dict[str, Any]:
        """Run the phases; return a summary. Raises PhaseError / Interrupted after recording.

        A real run holds the deploy lease throughout: a second one is refused, naming it.
        A paused stack stays paused (infra only) unless `resume` is given."""
        if dry_run:
            return self._deploy(from_phase, stop_after, dry_run)
        record = self.load_record() if resume else None
        if record is not None and record.operations.get("paused"):
            self.resume()  # Cloud SQL, Argo CD, then the apps; the deploy below converges
        with self.lease() as lease:
            self._lease = lease
            try:
                return self._deploy(from_phase, stop_after, dry_run)
            finally:
                self._lease = None

    def pause(self, by: str, force: bool = False) -> dict[str, Any]:
        """Stop what bills by the hour, keeping data, names and URLs (ops/pause.py)."""
        from .ops.pause_run import run

        return run(self, "pause", by=by, force=force)

    def resume(self) -> dict[str, Any]:
        from .ops.pause_run import run

        return run(self, "resume")

    def lease(self) -> Any:
        factory = self.services.lease_factory
        if factory is not None:
            return factory(self.cfg, self.store)
        return make_lease(self.cfg, self.store, self.options.command)

    def _deploy(
        self, from_phase: str | None, stop_after: str | None, dry_run: bool
    ) -> dict[str, Any]:
        self._dry_run = dry_run
        if dry_run:
            stop_after = stop_after if stop_after in ("preflight",) else "infra"
        existing = self.load_record()
        record = existing or DeploymentRecord.new(self.cfg)
        paused = record.operations.get("paused")
        if paused and not paused.get("resuming"):
            # Argo CD and the servers are down: only the infra may converge (kept paused)
            names = self._names()
            if "infra" in names and (
                stop_after is None or names.index(stop_after) > names.index("infra")
            ):
                stop_after = "infra"
        plan = self.plan_run(existing, from_phase, stop_after)
        self._guard_upgrade(existing, record, dry_run)  # reads the old versions: before below
        record.config_hash = config_hash(self.cfg)
        record.config = self.cfg.redacted()
        if not dry_run:
            record.destroy = {}  # a new deploy starts a new life cycle
        summary: dict[str, Any] = {
            "deployment": self.cfg.name,
            "project": self.cfg.project,
            "dry_run": dry_run,
            "record": self.store.location,
            "phases": {},
        }
        from .phases.headstart import make_head_start, run_infra

        hs = make_head_start(self, plan, record, dry_run)  # gitops alongside infra
        try:
            for phase, should_run in plan:
                if not should_run:
                    rec = record.phases.get(phase.name, PhaseRecord())
                    summary["phases"][phase.name] = {"status": "skipped", "previous": rec.status}
                    self._call(self.reporter, "phase_start", phase.name)
                    self._call(self.reporter, "phase_end", phase.name, "skipped", 0.0)
                    continue
                if phase.name == "infra" and hs is not None:
                    summary["phases"]["infra"] = run_infra(self, phase, record, dry_run, hs)
                    continue
                summary["phases"][phase.name] = self._run_one(
                    phase, record, dry_run, head_start=hs if phase.name == "gitops" else None
                )
                if phase.name == "preflight" and self._lease is not None:
                    self._lease.acquire_remote()  # the state bucket exists from here on
        finally:
            self._call(self.reporter, "close")
        upgrade = record.operations.get("upgrade")
        if upgrade and not dry_run and upgrade.get("status") == "pending":
            if all(s.get("status") != "failed" for s in summary["phases"].values()):
                upgrade["status"] = "done"
                self._save(record, dry_run)
            summary["upgrade"] = upgrade
        if paused:
            summary["paused"] = paused
        infra = record.phases.get("infra")
        if infra and infra.outputs.get("outputs"):
            summary["outputs"] = infra.outputs["outputs"]
        if dry_run:
            summary["preview"] = (infra.outputs.get("preview") if infra else None) or {}
            pre = record.phases.get("preflight")
            if pre is not None:
                summary["state"] = {k: v for k, v in pre.outputs.items() if k.startswith("state_")}
        return summary

    def _guard_upgrade(
        self, existing: DeploymentRecord | None, record: DeploymentRecord, dry_run: bool
    ) -> None:
        """Refuse a ZenML downgrade; back up first when ZenML or MLflow changes version."""
        from . import __version__
        from .ops import upgrade as up

        if dry_run:
            up.check_downgrade(up.version_changes(existing, self.cfg), self.options.allow_downgrade)
            return
        from .ops.context import backup_runner

        entry = up.before_deploy(
            self.cfg,
            existing,
            skip_backup=self.options.skip_backup,
            allow_downgrade=self.options.allow_downgrade,
            run_backup=backup_runner(self.options, self.services, self.reporter.log),
            log=self.reporter.log,
        )
        if entry is not None:
            entry["status"] = "pending"
            record.operations["upgrade"] = entry
        record.operations["package_version"] = __version__
        self._save(record, dry_run)

    @staticmethod
    def _call(obj: Any, method: str, *args: Any) -> None:
        fn = getattr(obj, method, None)
        if fn is not None:
            fn(*args)

    def _infra_with_secrets(self, record: DeploymentRecord) -> Any:
        """InfraOutputs with the Pulumi secret outputs read from the stack (never the record).

        None when there are none, or when they cannot be read (the phase then sees the
        recorded outputs and reports what it misses itself).
        """
        infra = record.phases.get("infra")
        wanted = list((infra.outputs.get("secret_outputs") if infra else None) or [])
        if infra is None or not wanted or not infra.outputs.get("outputs"):
            return None
        if self._secret_infra is None:
            from .outputs import InfraOutputs

            reader = self.services.secret_outputs_reader
            try:
                if reader is None:
                    from .infra.stack import stack_outputs

                    values = stack_outputs(self.cfg, self.options, self.services)
                    secrets = {k: v.value for k, v in values.items() if k in wanted}
                else:
                    secrets = reader(self.cfg, wanted)
                self._secret_infra = InfraOutputs.from_mapping(
                    {**infra.outputs["outputs"], **secrets}, source="stack outputs"
                )
            except Exception as e:  # noqa: BLE001 - optional: the phase then reports what it misses itself
                self.reporter.log(f"secret outputs unavailable ({e.__class__.__name__}): {e}")
                return None
        return self._secret_infra

    def _save(self, record: DeploymentRecord, dry_run: bool) -> None:
        if not dry_run:
            with self._save_lock:  # two lines of work write it while infra and gitops overlap
                self.store.save(record)

    def _run_one(
        self, phase: Phase, record: DeploymentRecord, dry_run: bool, head_start: Any = None
    ) -> dict[str, Any]:
        rec = PhaseRecord(status="started", started_at=_now())
        previous = record.phases.get(phase.name)
        if previous is not None:
            rec.outputs = previous.outputs  # keep them readable while the phase re-runs
        record.phases[phase.name] = rec
        self._save(record, dry_run)
        ctx = self._context(record)
        ctx.head_start = head_start
        if phase.name not in ("preflight", "infra"):
            ctx._infra = self._infra_with_secrets(record)
        self._call(self.reporter, "phase_start", phase.name)
        t0 = time.monotonic()

        def finish(status: PhaseStatus, error: str | None = None) -> None:
            rec.status = status
            rec.finished_at = _now()
            rec.duration_s = round(time.monotonic() - t0, 2)
            rec.error = error
            self._save(record, dry_run)
            self._call(self.reporter, "phase_end", phase.name, status, rec.duration_s)

        try:
            try:
                outputs = phase.run(ctx)
            except Exception as e:
                known = known_error(e)
                if known is None:
                    raise
                raise known from e
        except KeyboardInterrupt:
            finish("interrupted", "interrupted by the user")
            raise Interrupted(
                f"{phase.name} was interrupted; what finished is recorded",
                "re-run `zenml-gcp-gitops deploy` with the same flags to resume",
            ) from None
        except Interrupted as e:
            finish("interrupted", e.message)
            raise
        except UserError as e:
            if e.owned_by_another_run:
                # another deploy holds the lock and owns this phase's record entry
                if previous is not None:
                    record.phases[phase.name] = previous
                else:
                    record.phases.pop(phase.name, None)
                self._save(record, dry_run)
                self._call(self.reporter, "phase_end", phase.name, "locked", 0.0)
                if self._lease is not None:
                    # we hold the deploy lease, so no other deploy runs: a dead run left it
                    raise stale_lock(self.cfg.name, self._lease, e) from e
                raise
            rec.log_file = e.log_file
            rec.hint = e.hint
            finish("failed", e.message)
            raise PhaseError(
                f"{phase.name} failed: {e.message}",
                e.hint
                or f"fix the cause and re-run `zenml-gcp-gitops deploy`; it resumes at {phase.name}",
            ) from e
        except Exception as e:
            log = crash_log(self.cfg, phase.name, e)
            rec.log_file = str(log)
            finish("failed", f"{e.__class__.__name__}: {e}")
            raise PhaseError(
                f"{phase.name} failed: {e.__class__.__name__}: {e}",
                f"details in {log}; re-run `zenml-gcp-gitops deploy` to resume at {phase.name}",
            ) from e
        rec.outputs = scrub(outputs or {})
        finish("succeeded")
        return {"status": "succeeded", "duration_s": rec.duration_s}

    # ----------------------------------------------------------------------- status

    def status(self, live: bool = True) -> dict[str, Any]:
        record = self.load_record()
        out: dict[str, Any] = {
            "deployment": self.cfg.name,
            "project": self.cfg.project,
            "record": self.store.location,
            "deployed": record is not None,
            "phases": {},
        }
        if record is None:
            return out
        if record.operations.get("paused"):
            out["paused"] = record.operations["paused"]
        from .extras import pipeline_install

        out["pipeline_environment"] = pipeline_install(
            self.cfg.orchestrator, self.cfg.versions.zenml_chart
        )
        ctx = self._context(record)
        for phase in self.phases:
            rec = record.phases.get(phase.name, PhaseRecord())
            entry: dict[str, Any] = rec.model_dump(exclude={"outputs"})
            if live and rec.status == "succeeded":
                try:
                    entry["live"] = scrub(phase.status(ctx))
                except UserError as e:
                    entry["live"] = {"reachable": False, "error": e.message}
                except Exception as e:  # noqa: BLE001 - status is best effort: any failure is shown as unreachable
                    entry["live"] = {"reachable": False, "error": f"{e.__class__.__name__}: {e}"}
            out["phases"][phase.name] = entry
        infra = record.phases.get("infra")
        if infra and infra.outputs.get("outputs"):
            o = infra.outputs["outputs"]
            out["infra"] = {
                k: o.get(k)
                for k in (
                    "zenml_host",
                    "mlflow_host",
                    "ingress_ip",
                    "cluster_name",
                    "cluster_location",
                    "registry_uri",
                    "artifact_bucket",
                    "sql_instance",
                )
            }
            monitoring = self._monitoring_status(o, live and "paused" not in out)
            if monitoring is not None:
                out["monitoring"] = monitoring
        if record.destroy:
            out["destroy"] = {
                k: v.model_dump(exclude={"outputs"}) for k, v in record.destroy.items()
            }
        if infra and infra.outputs.get("resource_durations"):
            from .estimate.durations import compare, sql_shape

            # the program always encrypts the instance with the deployment's key (CMEK)
            shapes = sql_shape(self.cfg.sql_availability_effective, cmek=True)
            out["durations"] = compare(infra.outputs["resource_durations"], shapes)
        return out

    def _monitoring_status(self, o: dict[str, Any], live: bool) -> dict[str, Any] | None:
        """The dashboard, who is notified, and each uptime check's latest result."""
        checks = o.get("uptime_checks")
        if not checks and o.get("dashboard_url"):  # paused: the checks are removed
            return {"dashboard": o["dashboard_url"], "notified": o.get("alerts_notify"),
                    "off": "paused: uptime checks removed, alert policies disabled"}  # fmt: skip
        if not checks:
            return None
        out: dict[str, Any] = {
            "dashboard": o.get("dashboard_url"),
            "notified": o.get("alerts_notify"),
        }
        if live:
            from .ops import uptime

            session = self.services.monitoring_session
            if session is None:
                from .gcp.api import GcpApi

                session = GcpApi(self.cfg).session()
            out["uptime"] = uptime.latest(session, self.cfg.project, dict(checks))
        return out

    # ----------------------------------------------------------------------- destroy

    def destroy(self) -> dict[str, Any]:
        """ci -> register -> gitops -> infra. Resumable: finished teardowns are skipped."""
        with self.lease() as lease:
            self._lease = lease
            try:
                return self._destroy()
            finally:
                self._lease = None

    def _destroy(self) -> dict[str, Any]:
        existing = self.load_record()
        record = existing or DeploymentRecord.new(self.cfg)
        lost = existing is None or not record.phases
        if lost:
            self._recover_infra_outputs(record)
        ctx = self._context(record)
        order = [p for p in reversed(self.phases) if p.name != "preflight"]
        # Checks that must pass before anything is deleted (e.g. deletion protection).
        for phase in order:
            check = getattr(phase, "check_destroy", None)
            if (
                check is not None
                and record.destroy.get(phase.name, PhaseRecord()).status != "succeeded"
            ):
                check(ctx)
        summary: dict[str, Any] = {"deployment": self.cfg.name, "phases": {}}
        try:
            for phase in order:
                prev = record.destroy.get(phase.name)
                if prev is not None and prev.status == "succeeded":
                    summary["phases"][phase.name] = {"status": "skipped", "previous": "succeeded"}
                    continue
                if not lost and phase.name != "infra" and phase.name not in record.phases:
                    # never started, so nothing to undo (and nothing to connect to)
                    summary["phases"][phase.name] = {"status": "skipped", "previous": "never run"}
                    continue
                summary["phases"][phase.name] = self._destroy_one(phase, record, ctx)
        finally:
            self._call(self.reporter, "close")
        if self.options.purge_state:
            # the stack first, then the record, and last the bucket/key that held them
            purgers = [(p.name, getattr(p, "purge", None)) for p in self.phases]
            for name, purge in purgers:
                if purge is not None and name != "preflight":
                    summary.setdefault("purged", {})[name] = purge(ctx)
            self.store.delete()
            summary["record"] = "deleted"
            for name, purge in purgers:
                if purge is not None and name == "preflight":
                    summary.setdefault("purged", {})[name] = purge(ctx)
        return summary

    def _recover_infra_outputs(self, record: DeploymentRecord) -> None:
        """Without a record, read the infra outputs from the stack so the teardowns of the
        later phases (e.g. the load balancers the apps made) can still reach the cluster."""
        if not any(p.name == "infra" for p in self.phases):
            return
        try:
            from .infra.stack import split_outputs, stack_outputs

            plain, secret = split_outputs(stack_outputs(self.cfg, self.options, self.services))
        except Exception as e:  # noqa: BLE001 - recovery is best effort: destroy goes on without the outputs
            self.reporter.log(f"no infra outputs to recover ({e.__class__.__name__})")
            return
        record.phases["infra"] = PhaseRecord(
            status="succeeded", outputs={"outputs": plain, "secret_outputs": secret}
        )

    def _destroy_one(
        self, phase: Phase, record: DeploymentRecord, ctx: PhaseContext
    ) -> dict[str, Any]:
        rec = PhaseRecord(status="started", started_at=_now())
        record.destroy[phase.name] = rec
        self.store.save(record)
        self._call(self.reporter, "phase_start", f"{phase.name}")
        t0 = time.monotonic()

        def finish(status: PhaseStatus, error: str | None = None) -> None:
            rec.status, rec.error = status, error
            rec.finished_at = _now()
            rec.duration_s = round(time.monotonic() - t0, 2)
            if status == "succeeded" and phase.name in record.phases:
                record.phases[phase.name].status = "pending"
            self.store.save(record)
            self._call(self.reporter, "phase_end", phase.name, status, rec.duration_s)

        try:
            phase.destroy(ctx)
        except KeyboardInterrupt:
            finish("interrupted", "interrupted by the user")
            raise Interrupted(
                f"destroying {phase.name} was interrupted",
                "re-run `zenml-gcp-gitops destroy` to continue",
            ) from None
        except UserError as e:
            rec.hint = e.hint
            finish("failed", e.message)
            raise PhaseError(
                f"destroying {phase.name} failed: {e.message}",
                e.hint or "fix the cause and re-run `zenml-gcp-gitops destroy`; it continues here",
            ) from e
        except Exception as e:
            log = crash_log(self.cfg, f"destroy-{phase.name}", e)
            finish("failed", f"{e.__class__.__name__}: {e}")
            raise PhaseError(
                f"destroying {phase.name} failed: {e.__class__.__name__}: {e}",
                f"details in {log}; re-run `zenml-gcp-gitops destroy` to continue",
            ) from e
        finish("succeeded")
        return {"status": "succeeded", "duration_s": rec.duration_s}
