"""The flags a run carries are typed and frozen: a misspelt one fails at once, and no phase
can write into them (phases return their results instead)."""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import pytest

from zenml_gcp_gitops.config import build_config
from zenml_gcp_gitops.engine import Engine
from zenml_gcp_gitops.phases.base import PhaseContext
from zenml_gcp_gitops.progress import PlainReporter
from zenml_gcp_gitops.run_options import RunOptions
from zenml_gcp_gitops.state.record import FileRecordStore


def test_a_misspelt_flag_fails_instead_of_reading_as_none() -> None:
    with pytest.raises(TypeError, match="yse"):
        RunOptions(yse=True)  # type: ignore[call-arg]


def test_flags_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunOptions().force = True  # type: ignore[misc]


class _Snooper:
    """A phase that records what it was handed and tries to leave a note for the next one."""

    def __init__(self, name: str, seen: list[tuple[str, bool, RunOptions]]) -> None:
        self.name = name
        self.seen = seen

    def run(self, ctx: PhaseContext) -> dict[str, Any]:
        self.seen.append((self.name, ctx.dry_run, ctx.options))
        with pytest.raises(dataclasses.FrozenInstanceError):
            ctx.options.yes = False  # type: ignore[misc]
        return {"ok": True}

    def status(self, ctx: PhaseContext) -> dict[str, Any]:
        return {}

    def destroy(self, ctx: PhaseContext) -> None:
        pass


def test_the_engine_hands_every_phase_the_same_flags_and_dry_run_per_call(tmp_path: Any) -> None:
    cfg = build_config(None, {"project": "my-project-1", "region": "europe-west4"})
    seen: list[tuple[str, bool, RunOptions]] = []
    flags = RunOptions(yes=True, verbose=True)
    engine = Engine(
        cfg,
        phases=[_Snooper("preflight", seen), _Snooper("infra", seen)],
        store=FileRecordStore(tmp_path / "record.json"),
        reporter=PlainReporter(stream=io.StringIO()),
        options=flags,
    )
    engine.deploy(dry_run=True)
    engine.deploy()
    assert [(n, d) for n, d, _ in seen] == [
        ("preflight", True),
        ("infra", True),
        ("preflight", False),
        ("infra", False),
    ]
    assert all(o is flags for _, _, o in seen) and engine.options == RunOptions(
        yes=True, verbose=True
    )
