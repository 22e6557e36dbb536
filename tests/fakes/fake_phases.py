"""Stand-ins for the gitops/register/ci phases, for engine tests: they record what they were
given (the infra outputs the engine plumbed through) and the order they were called in."""

from __future__ import annotations

from typing import Any

from zenml_gcp_gitops.errors import UserError
from zenml_gcp_gitops.phases.base import PhaseContext


class FakePhase:
    def __init__(
        self, name: str, journal: list[str], fail_times: int = 0, interrupt: bool = False
    ) -> None:
        self.name = name
        self.journal = journal
        self.fail_times = fail_times
        self.interrupt = interrupt
        self.seen_infra: dict[str, Any] | None = None
        self.seen_recorded: dict[str, Any] | None = None

    def run(self, ctx: PhaseContext) -> dict[str, Any]:
        self.journal.append(f"run:{self.name}")
        if self.interrupt:
            self.interrupt = False
            raise KeyboardInterrupt
        if self.fail_times > 0:
            self.fail_times -= 1
            raise UserError(f"{self.name} exploded", f"fix {self.name}")
        self.seen_infra = ctx.infra.model_dump()
        self.seen_recorded = dict(ctx.recorded)
        return {"phase": self.name, "zenml_url": ctx.infra.zenml_url, "admin_password": "hunter2"}

    def status(self, ctx: PhaseContext) -> dict[str, Any]:
        return {"reachable": True, "phase": self.name}

    def destroy(self, ctx: PhaseContext) -> None:
        self.journal.append(f"destroy:{self.name}")


def fake_later_phases(journal: list[str]) -> list[FakePhase]:
    return [FakePhase(n, journal) for n in ("gitops", "register", "ci")]
