"""The Pulumi engine's event stream turned into progress, and its failures into one line.

EventTracker(reporter, total)    on_event callback: progress per resource, failures kept
command_error(cfg, err, op, tracker, log) -> UserError   resource, operation, first
                                 meaningful line, a hint for the usual causes
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import user_data_dir
from ..errors import PhaseError, UserError

if TYPE_CHECKING:
    from ..config import DeploymentConfig
    from ..phases.base import Reporter


STACK_TYPE = "pulumi:pulumi:Stack"


class LockedError(PhaseError):
    """Another deploy holds the state lock (or a crashed one left it behind)."""

    owned_by_another_run = True  # the engine leaves the record to the run holding the lock


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

# IAM grants (project, key, bucket, account, zone members, bindings and policies): a create
# that needs one can be refused for a few minutes after it is made.
_GRANT_TYPE = re.compile(r"IAM(Member|Binding|Policy)$")
# How Google's APIs refuse a caller the grant has not reached yet: 403s, Cloud KMS's
# "Permission '...' denied", Cloud SQL's notAuthorized and its CMEK delegation error.
_PERMISSION_DENIED = re.compile(
    r"error 403|permission_denied|permission '[^']+' denied|permission denied|"
    r"does not have (the )?(required )?permission|notauthorized|"
    r"unable to delegate the access of cmek",
    re.I,
)


def is_grant(resource_type: str) -> bool:
    return bool(_GRANT_TYPE.search(resource_type.rsplit(":", 1)[-1]))


def is_permission_denied(message: str) -> bool:
    return bool(_PERMISSION_DENIED.search(message))


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
    grants: list[str] = field(default_factory=list)  # IAM grants this run created or changed
    finished: set[str] = field(default_factory=set)
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
            if md.type == STACK_TYPE or md.urn in self.finished:
                return  # a component is reported again when it registers its outputs
            self.finished.add(md.urn)
            self.done += 1
            if self.total is not None and self.done > self.total:
                self.total = self.done
            op = getattr(md.op, "value", str(md.op))
            start = self.started.pop(md.urn, None)
            if start is not None and op in _TIMED_OPS:
                self.durations.setdefault(md.type, []).append(self.clock() - start)
            if op in _TIMED_OPS and is_grant(md.type):
                self.grants.append(md.urn.rsplit("::", 1)[-1])
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


def log_path(cfg: DeploymentConfig, op: str) -> Path:
    path = user_data_dir() / "logs" / f"{cfg.name}-{op}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def engine_failure(
    cfg: DeploymentConfig, err: Exception, op: str, tracker: EventTracker, log: Path | None = None
) -> UserError:
    """Keep everything the engine said in the log file, then summarise it in one line."""
    log = log or log_path(cfg, op)
    with log.open("a") as f:
        f.write("\n".join(tracker.log_lines) + "\n" + str(err) + "\n")
    return command_error(cfg, err, op, tracker, log)


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


def stale_lock(name: str, lease: Any, e: UserError) -> PhaseError:
    """The Pulumi lock, while this run holds the deploy lease: a dead run left it."""
    prev = getattr(lease, "previous", None)
    who = f" ({prev.describe()})" if prev is not None else ""
    detail = e.message.split(" holds the Pulumi state lock", 1)[-1]
    return PhaseError(
        f"the previous run of '{name}'{who} died and left the Pulumi state "
        f"lock behind{detail}; no other deploy is running",
        "`zenml-gcp-gitops unlock` removes that lock (and the dead run's lease); if that "
        "run's `pulumi` process still runs, wait for it first. Then re-run to resume",
    )


def command_error(
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
    e.log_file = str(log) if log else None
    return e
