"""The small interface every phase implements, and the context the orchestrator hands it.

A phase reads the config and what earlier phases recorded, and returns the outputs later
phases consume. `engine.py` runs the phases in order and persists each result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..run_options import RunOptions, Services

if TYPE_CHECKING:
    from ..config import DeploymentConfig
    from ..outputs import InfraOutputs
    from .headstart import HeadStart


class Reporter(Protocol):
    """Progress sink; the engine gives a rich one on a TTY and a plain one otherwise."""

    def step(self, message: str) -> None: ...
    def progress(self, done: int, total: int | None, current: str | None = None) -> None: ...
    def log(self, line: str) -> None: ...


class NullReporter:
    def step(self, message: str) -> None:
        pass

    def progress(self, done: int, total: int | None, current: str | None = None) -> None:
        pass

    def log(self, line: str) -> None:
        pass


@dataclass
class PhaseContext:
    cfg: DeploymentConfig
    # phase name -> the outputs it recorded (plain JSON data; no secret values)
    recorded: dict[str, dict[str, Any]] = field(default_factory=dict)
    reporter: Reporter = field(default_factory=NullReporter)
    options: RunOptions = field(default_factory=RunOptions)  # the user's flags (frozen)
    services: Services = field(default_factory=Services)  # injected clients (tests)
    dry_run: bool = False  # deploy --dry-run: preview, create nothing
    # the record's day-2 entries (e.g. a pending upgrade the gitops phase watches)
    operations: dict[str, Any] = field(default_factory=dict)
    _infra: InfraOutputs | None = None
    # infra: gitops's line of work started from its events (`phases.headstart`), if any;
    # gitops: what that line did before infra ended
    head_start: HeadStart | None = None

    @property
    def paused(self) -> bool:
        """`pause` recorded, and no `resume` has started: the desired state says stopped."""
        entry = self.operations.get("paused") or {}
        return bool(entry) and not entry.get("resuming")

    @property
    def infra(self) -> InfraOutputs:
        """The infra outputs, as the infra phase recorded them (or as injected by tests)."""
        if self._infra is None:
            from ..errors import PhaseError
            from ..outputs import InfraOutputs

            data = self.recorded.get("infra", {}).get("outputs")
            if not data:
                raise PhaseError(
                    "the infra phase has no recorded outputs",
                    "run `zenml-gcp-gitops deploy --from-phase infra` first",
                )
            self._infra = InfraOutputs.from_mapping(data, source="recorded infra outputs")
        return self._infra


class Phase(Protocol):
    name: str

    def run(self, ctx: PhaseContext) -> dict[str, Any]:
        """Do the work (idempotently); return the outputs later phases need."""
        ...

    def status(self, ctx: PhaseContext) -> dict[str, Any]:
        """A live check where reachable; never changes anything."""
        ...

    def destroy(self, ctx: PhaseContext) -> None:
        """Undo what `run` made. Phases with nothing to undo do nothing."""
        ...
