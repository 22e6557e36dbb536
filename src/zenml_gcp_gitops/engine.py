"""The phase orchestrator: runs preflight -> infra -> gitops -> register -> ci, records each
result in the deployment record, resumes where a failed or interrupted run stopped, and tears
everything down in reverse.

The deployment record is one JSON document per deployment. It sits next to the Pulumi state
(`gs://<state bucket>/zenml-gcp-gitops/<name>/record.json`) or, for a `file://` backend, under
`user_data_dir()/deployments/<name>/record.json`. It holds each phase's status, timestamps, a
one-line error and the plain outputs later phases consume -- never a secret value: Pulumi secret
outputs stay in the (encrypted) stack and are fetched from it when needed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, Field, SecretStr

from .config import user_data_dir
from .errors import PhaseError, UserError, known_error
from .phases.base import PhaseContext

if TYPE_CHECKING:
    from .config import DeploymentConfig
    from .phases.base import Phase

RECORD_VERSION = 1
RECORD_PREFIX = "zenml-gcp-gitops"  # object prefix inside the state bucket
PhaseStatus = Literal["pending", "started", "succeeded", "failed", "interrupted", "skipped"]

# Keys whose values must never reach the record even if a phase returns them by mistake.
_SECRET_KEY_RE = re.compile(r"(password|passphrase|private_key|secret_value|token|api_key)$", re.I)


class Interrupted(PhaseError):
    """Ctrl-C: the phase stopped cleanly and was recorded; re-running resumes."""

    exit_code = 130


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class PhaseRecord(BaseModel):
    status: PhaseStatus = "pending"
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    error: str | None = None
    hint: str | None = None
    log_file: str | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)


class DeploymentRecord(BaseModel):
    version: int = RECORD_VERSION
    name: str
    project: str
    region: str
    state_url: str
    config_hash: str = ""
    config: dict[str, Any] = Field(default_factory=dict)
    phases: dict[str, PhaseRecord] = Field(default_factory=dict)
    destroy: dict[str, PhaseRecord] = Field(default_factory=dict)
    # day-2 operations: package_version, the last upgrade (its backup ID), servers stopped by
    # an unfinished restore
    operations: dict[str, Any] = Field(default_factory=dict)
    updated_at: str | None = None

    @classmethod
    def new(cls, cfg: DeploymentConfig) -> DeploymentRecord:
        return cls(
            name=cfg.name,
            project=cfg.project,
            region=cfg.region,
            state_url=cfg.state_url,
            config_hash=config_hash(cfg),
            config=cfg.redacted(),
        )

    def recorded_outputs(self) -> dict[str, dict[str, Any]]:
        return {name: rec.outputs for name, rec in self.phases.items() if rec.outputs}


def config_hash(cfg: DeploymentConfig) -> str:
    """Changes when the user changes anything that shapes the deployment."""
    data = json.dumps(cfg.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def scrub(value: Any) -> Any:
    """Plain JSON data with secret-looking values dropped (defence in depth for the record)."""
    if isinstance(value, SecretStr):
        return "[secret]"
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="python")
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if isinstance(k, str) and _SECRET_KEY_RE.search(k) and v not in (None, "", "[secret]"):
                out[k] = "[secret]"
            else:
                out[k] = scrub(v)
        return out
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


# --------------------------------------------------------------------------- record stores


class RecordStore(Protocol):
    location: str

    def load(self) -> DeploymentRecord | None: ...
    def save(self, record: DeploymentRecord) -> None: ...
    def delete(self) -> None: ...


class RecordConflict(UserError):
    """The record changed since this run read it: another writer would be overwritten."""


def _conflict(location: str) -> RecordConflict:
    return RecordConflict(
        f"the deployment record {location} was changed by another run since this one read it",
        "nothing was overwritten; check `zenml-gcp-gitops status`, then re-run",
    )


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _parse_record(text: str, where: str) -> DeploymentRecord:
    try:
        return DeploymentRecord.model_validate_json(text)
    except ValueError as e:
        raise UserError(
            f"the deployment record at {where} is unreadable ({e.__class__.__name__})",
            "move it aside; `deploy` then re-runs every phase (all of them are idempotent)",
        ) from None


def _digest(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()


class FileRecordStore:
    """A JSON file, replaced atomically (write to a temp file, fsync, rename).

    Saves are a compare-and-swap: under an `fcntl` lock, the file must still be what this
    store last read or wrote, so a concurrent writer's update is never lost silently."""

    def __init__(self, path: Path, cas: bool = True) -> None:
        self.path = path
        self.location = str(path)
        self.cas = cas  # off for the local mirror of a gs:// record (the bucket decides)
        self._seen: str | None = None  # digest of what we last read or wrote
        self._known = False  # False until the first load/save: no precondition yet

    def _read(self) -> str | None:
        try:
            return self.path.read_text()
        except FileNotFoundError:
            return None

    def load(self) -> DeploymentRecord | None:
        text = self._read()
        self._seen, self._known = _digest(text), True
        return None if text is None else _parse_record(text, self.location)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def save(self, record: DeploymentRecord) -> None:
        record.updated_at = _now()
        text = record.model_dump_json(indent=2)
        with self._locked():
            if self.cas and self._known and _digest(self._read()) != self._seen:
                raise _conflict(self.location)
            _atomic_write(self.path, text)
        self._seen, self._known = _digest(text), True

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)
        self._seen, self._known = None, True


class GcsRecordStore:
    """An object in the state bucket (GCS uploads are atomic), mirrored locally.

    Before preflight has created the bucket, saves land only in the local mirror; the first
    save after the bucket exists uploads the whole record.
    """

    def __init__(self, bucket: str, blob: str, client: Any, mirror: FileRecordStore) -> None:
        self.bucket_name = bucket
        self.blob_name = blob
        self.client = client
        self.mirror = mirror
        self.location = f"gs://{bucket}/{blob}"
        self.generation: int | None = None  # of the object we last read/wrote; 0: none

    def _blob(self, name: str | None = None) -> Any:
        return self.client.bucket(self.bucket_name).blob(name or self.blob_name)

    def load(self) -> DeploymentRecord | None:
        from google.api_core import exceptions as gexc

        try:
            blob = self.client.bucket(self.bucket_name).get_blob(self.blob_name)
            if blob is None:
                self.generation = 0
                return self.mirror.load()
            text = blob.download_as_text(if_generation_match=blob.generation)
            self.generation = int(blob.generation)
        except gexc.NotFound:
            self.generation = 0
            return self.mirror.load()
        except gexc.PreconditionFailed:
            return self.load()  # replaced between the metadata read and the download
        except gexc.Forbidden:
            raise self._forbidden() from None
        return _parse_record(text, self.location)

    def _forbidden(self) -> UserError:
        return UserError(
            f"you may not read or write the deployment record {self.location}",
            f"you need storage.objects.* on gs://{self.bucket_name} (roles/storage.objectAdmin); "
            "if the bucket is not yours, choose another --name or --state",
        )

    def save(self, record: DeploymentRecord) -> None:
        from google.api_core import exceptions as gexc

        self.mirror.save(record)
        blob = self._blob()
        try:
            # compare-and-swap: only over the generation this run read or wrote last
            blob.upload_from_string(
                record.model_dump_json(indent=2),
                content_type="application/json",
                if_generation_match=self.generation,
            )
            self.generation = int(blob.generation) if blob.generation is not None else None
        except gexc.NotFound:
            pass  # no bucket yet: preflight creates it
        except gexc.PreconditionFailed:
            raise _conflict(self.location) from None
        except gexc.Forbidden:
            raise self._forbidden() from None

    def delete(self) -> None:
        from google.api_core import exceptions as gexc

        self.mirror.delete()
        with contextlib.suppress(gexc.NotFound):
            self._blob().delete()


def make_lease(cfg: DeploymentConfig, store: RecordStore, command: str | None = None) -> Any:
    """The deploy lease for this deployment: a local lock, plus the bucket side for gs://."""
    from .lease import DeployLease, GcsLease

    remote = None
    if isinstance(store, GcsRecordStore):
        blob = store.blob_name.rsplit("/", 1)[0] + "/lease.json"
        remote = GcsLease(store.client, store.bucket_name, blob)
    return DeployLease(cfg.name, local_record_path(cfg).parent, remote, command)


def local_record_path(cfg: DeploymentConfig) -> Path:
    return user_data_dir() / "deployments" / cfg.name / "record.json"


def record_store(cfg: DeploymentConfig, storage_client: Any = None) -> RecordStore:
    """The record next to the state: in the state bucket for gs://, else under the data dir."""
    if cfg.is_local_backend:
        return FileRecordStore(local_record_path(cfg))
    mirror = FileRecordStore(local_record_path(cfg), cas=False)
    bucket, _, prefix = cfg.state_url.removeprefix("gs://").partition("/")
    blob = "/".join(p for p in (prefix.strip("/"), RECORD_PREFIX, cfg.name, "record.json") if p)
    if storage_client is None:
        from google.cloud import storage  # type: ignore[attr-defined,unused-ignore]

        from .phases.preflight import GcpApi

        # the credential check comes first: without ADC this is the one-line fix, not the
        # traceback storage.Client would raise
        credentials = GcpApi(cfg).credentials()
        storage_client = storage.Client(project=cfg.project, credentials=credentials)
    return GcsRecordStore(bucket, blob, storage_client, mirror)


# --------------------------------------------------------------------------- progress


def _fmt_elapsed(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


class PlainReporter:
    """Plain lines for CI and pipes: one per phase event, progress only when it moves."""

    def __init__(self, stream: Any = None, verbose: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.verbose = verbose
        self.phase = ""
        self._last: tuple[int, str | None] | None = None
        self._last_t = 0.0

    def _print(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def phase_start(self, name: str) -> None:
        self.phase = name
        self._last = None
        self._print(f"[{name}] started")

    def phase_end(self, name: str, status: str, elapsed: float) -> None:
        self._print(f"[{name}] {status} ({_fmt_elapsed(elapsed)})")

    def step(self, message: str) -> None:
        self._last = None
        self._print(f"[{self.phase}] {message}")

    def progress(self, done: int, total: int | None, current: str | None = None) -> None:
        # CI logs: a line when a resource finishes, at most one a second (plus the last one)
        now = time.monotonic()
        if self._last is not None and (
            done == self._last[0] or (now - self._last_t < 1.0 and done != total)
        ):
            return
        self._last, self._last_t = (done, current), now
        count = f"{done}/{total}" if total else f"{done}"
        self._print(f"[{self.phase}] {count} resources" + (f" - {current}" if current else ""))

    def log(self, line: str) -> None:
        if self.verbose:
            self._print(f"[{self.phase}]   {line}")

    def close(self) -> None:
        pass


class RichReporter:
    """A rich progress display per phase with elapsed time, in the style of ZenML's CLI."""

    def __init__(self, verbose: bool = False, console: Any = None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        from .ui import console_err

        self.verbose = verbose
        self.console = console or console_err()
        self.progress_ui = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.fields[phase]:<10}[/bold]"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}", style="dim"),
            console=self.console,
            transient=False,
        )
        self.task: Any = None
        self.phase = ""
        self.started = False

    def phase_start(self, name: str) -> None:
        if not self.started:  # the live display starts with the first phase, not before
            self.progress_ui.start()
            self.started = True
        self.phase = name
        self.task = self.progress_ui.add_task("", phase=name, total=None)

    def phase_end(self, name: str, status: str, elapsed: float) -> None:
        if self.task is None:
            return
        mark = {"succeeded": "[green]done[/green]", "skipped": "[dim]skipped[/dim]"}.get(
            status, f"[red]{status}[/red]"
        )
        task = self.progress_ui.tasks[self.task]
        if status in ("succeeded", "skipped"):
            total = task.total if task.total is not None else max(task.completed, 1)
            self.progress_ui.update(self.task, total=total, completed=total, description=mark)
        else:  # leave the bar where it stopped
            self.progress_ui.update(self.task, description=mark)
        self.progress_ui.stop_task(self.task)
        self.task = None

    def step(self, message: str) -> None:
        if self.task is not None:
            self.progress_ui.update(self.task, description=message)

    def progress(self, done: int, total: int | None, current: str | None = None) -> None:
        if self.task is not None:
            self.progress_ui.update(
                self.task, completed=done, total=total, description=current or ""
            )

    def log(self, line: str) -> None:
        if self.verbose:
            self.progress_ui.console.print(f"  [dim]{line}[/dim]", highlight=False, markup=False)

    def close(self) -> None:
        if self.started:
            self.progress_ui.stop()
            self.started = False

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Stop the live display while the user answers a prompt."""
        was = self.started
        self.close()
        try:
            yield
        finally:
            if was:
                self.progress_ui.start()
                self.started = True


def make_reporter(verbose: bool = False, interactive: bool | None = None) -> Any:
    from .ui import is_interactive

    if interactive if interactive is not None else (is_interactive() and sys.stderr.isatty()):
        return RichReporter(verbose=verbose)
    return PlainReporter(verbose=verbose)


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
        options: dict[str, Any] | None = None,
        phase_factory: Callable[[], list[Phase]] = default_phases,
    ) -> None:
        self.cfg = cfg
        self._phases = phases
        self._phase_factory = phase_factory
        self.options = dict(options or {})
        self._store = store
        self.reporter = reporter or PlainReporter(verbose=bool(self.options.get("verbose")))
        self._secret_infra: Any = None
        self._lease: Any = None

    @property
    def phases(self) -> list[Phase]:
        if self._phases is None:
            self._phases = self._phase_factory()
        return self._phases

    @property
    def store(self) -> RecordStore:
        if self._store is None:
            self._store = record_store(self.cfg, self.options.get("storage_client"))
        return self._store

    def load_record(self) -> DeploymentRecord | None:
        return self.store.load()

    def _context(self, record: DeploymentRecord) -> PhaseContext:
        return PhaseContext(
            cfg=self.cfg,
            recorded=record.recorded_outputs(),
            reporter=self.reporter,
            options=self.options,
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
    ) -> dict[str, Any]:
        """Run the phases; return a summary. Raises PhaseError / Interrupted after recording.

        A real run holds the deploy lease throughout: a second one is refused, naming it."""
        if dry_run:
            return self._deploy(from_phase, stop_after, dry_run)
        with self.lease() as lease:
            self._lease = lease
            try:
                return self._deploy(from_phase, stop_after, dry_run)
            finally:
                self._lease = None

    def lease(self) -> Any:
        factory = self.options.get("lease_factory")
        if factory is not None:
            return factory(self.cfg, self.store)
        return make_lease(self.cfg, self.store, self.options.get("command"))

    def _deploy(
        self, from_phase: str | None, stop_after: str | None, dry_run: bool
    ) -> dict[str, Any]:
        if dry_run:
            self.options["dry_run"] = True
            stop_after = stop_after if stop_after in ("preflight",) else "infra"
        existing = self.load_record()
        record = existing or DeploymentRecord.new(self.cfg)
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
        try:
            for phase, should_run in plan:
                if not should_run:
                    rec = record.phases.get(phase.name, PhaseRecord())
                    summary["phases"][phase.name] = {"status": "skipped", "previous": rec.status}
                    self._call(self.reporter, "phase_start", phase.name)
                    self._call(self.reporter, "phase_end", phase.name, "skipped", 0.0)
                    continue
                summary["phases"][phase.name] = self._run_one(phase, record, dry_run)
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
            up.check_downgrade(
                up.version_changes(existing, self.cfg), bool(self.options.get("allow_downgrade"))
            )
            return
        from .ops.context import backup_runner

        entry = up.before_deploy(
            self.cfg,
            existing,
            skip_backup=bool(self.options.get("skip_backup")),
            allow_downgrade=bool(self.options.get("allow_downgrade")),
            run_backup=backup_runner(self.options, self.reporter.log),
            log=self.reporter.log,
        )
        if entry is not None:
            entry["status"] = "pending"
            record.operations["upgrade"] = entry
        record.operations["package_version"] = __version__
        pending = record.operations.get("upgrade")
        if pending and pending.get("status") == "pending":
            self.options["upgrade"] = pending  # the gitops phase watches the migration
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

            reader = self.options.get("secret_outputs_reader")
            try:
                if reader is None:
                    from .phases.infra import stack_outputs

                    values = stack_outputs(self.cfg, self.options)
                    secrets = {k: v.value for k, v in values.items() if k in wanted}
                else:
                    secrets = reader(self.cfg, wanted)
                self._secret_infra = InfraOutputs.from_mapping(
                    {**infra.outputs["outputs"], **secrets}, source="stack outputs"
                )
            except Exception as e:
                self.reporter.log(f"secret outputs unavailable ({e.__class__.__name__}): {e}")
                return None
        return self._secret_infra

    def _save(self, record: DeploymentRecord, dry_run: bool) -> None:
        if not dry_run:
            self.store.save(record)

    def _run_one(self, phase: Phase, record: DeploymentRecord, dry_run: bool) -> dict[str, Any]:
        rec = PhaseRecord(status="started", started_at=_now())
        previous = record.phases.get(phase.name)
        if previous is not None:
            rec.outputs = previous.outputs  # keep them readable while the phase re-runs
        record.phases[phase.name] = rec
        self._save(record, dry_run)
        ctx = self._context(record)
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
            if getattr(e, "owned_by_another_run", False):
                # another deploy holds the lock and owns this phase's record entry
                if previous is not None:
                    record.phases[phase.name] = previous
                else:
                    record.phases.pop(phase.name, None)
                self._save(record, dry_run)
                self._call(self.reporter, "phase_end", phase.name, "locked", 0.0)
                if self._lease is not None:
                    # we hold the deploy lease, so no other deploy runs: a dead run left it
                    raise self._stale_pulumi_lock(e) from e
                raise
            rec.log_file = getattr(e, "log_file", None)
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

    def _stale_pulumi_lock(self, e: UserError) -> PhaseError:
        prev = getattr(self._lease, "previous", None)
        who = f" ({prev.describe()})" if prev is not None else ""
        detail = e.message.split(" holds the Pulumi state lock", 1)[-1]
        return PhaseError(
            f"the previous run of '{self.cfg.name}'{who} died and left the Pulumi state "
            f"lock behind{detail}; no other deploy is running",
            "`zenml-gcp-gitops unlock` removes that lock (and the dead run's lease); if that "
            "run's `pulumi` process still runs, wait for it first. Then re-run to resume",
        )

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
        ctx = self._context(record)
        for phase in self.phases:
            rec = record.phases.get(phase.name, PhaseRecord())
            entry: dict[str, Any] = rec.model_dump(exclude={"outputs"})
            if live and rec.status == "succeeded":
                try:
                    entry["live"] = scrub(phase.status(ctx))
                except UserError as e:
                    entry["live"] = {"reachable": False, "error": e.message}
                except Exception as e:
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
        if record.destroy:
            out["destroy"] = {
                k: v.model_dump(exclude={"outputs"}) for k, v in record.destroy.items()
            }
        if infra and infra.outputs.get("resource_durations"):
            from .estimate.durations import compare

            out["durations"] = compare(infra.outputs["resource_durations"])
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
        if self.options.get("purge_state"):
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
            from .phases.infra import split_outputs, stack_outputs

            plain, secret = split_outputs(stack_outputs(self.cfg, self.options))
        except Exception as e:
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
