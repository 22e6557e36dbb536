"""`pause` asks a real ZenML server for runs in progress on the stack and refuses while any are.

Runs are created through the server's API as a client's orchestrator would (a snapshot on a
stack, then a run in `running` or `initializing`); a run of another stack does not count.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.zenml_server import ZenServer, start_zenml_server
from zenml_gcp_gitops.errors import UserError
from zenml_gcp_gitops.ops import pause as P
from zenml_gcp_gitops.ops.writers import Waits

STACK = "prod-stack"


@pytest.fixture(scope="module")
def server() -> Iterator[ZenServer]:
    srv = start_zenml_server(implicit_auth=False)
    try:
        yield srv
    finally:
        srv.stop()


def _runs(store: Any) -> dict[str, Any]:
    from zenml.config.pipeline_configurations import PipelineConfiguration
    from zenml.enums import ExecutionStatus
    from zenml.models import (
        ComponentFilter,
        PipelineRequest,
        PipelineRunRequest,
        PipelineSnapshotRequest,
        ProjectFilter,
        StackFilter,
        StackRequest,
    )

    project = store.list_projects(ProjectFilter()).items[0].id
    components = {c.type: [c.id] for c in store.list_stack_components(ComponentFilter()).items}
    ours = store.create_stack(StackRequest(name=STACK, components=components))
    other = store.list_stacks(StackFilter(name="default")).items[0]
    pipeline = store.create_pipeline(PipelineRequest(project=project, name="train"))

    def run(stack: Any, name: str, status: ExecutionStatus) -> Any:
        snap = store.create_snapshot(
            PipelineSnapshotRequest(
                project=project, run_name_template=name, stack=stack.id, pipeline=pipeline.id,
                pipeline_configuration=PipelineConfiguration(name="train"),
            )
        )  # fmt: skip
        req = PipelineRunRequest(project=project, name=name, snapshot=snap.id, status=status)
        return store.get_or_create_run(req)[0]

    return {
        "running": run(ours, "train-1", ExecutionStatus.RUNNING),
        "initializing": run(ours, "train-2", ExecutionStatus.INITIALIZING),
        "other": run(other, "elsewhere", ExecutionStatus.RUNNING),
    }


def test_pause_refuses_while_the_server_reports_runs_on_the_stack(server: ZenServer) -> None:
    from zenml.enums import ExecutionStatus
    from zenml.models import PipelineRunUpdate

    from zenml_gcp_gitops.zenml.session import Credentials, connect

    store = connect(server.url, Credentials(server.username, server.password), timeout=60)
    runs = _runs(store)
    journal: list[Any] = []
    acted: list[str] = []
    deps = P.PauseDeps(
        cfg=None,  # type: ignore[arg-type]  # the refusal comes before any use of it
        kube=lambda: pytest.fail("no cluster call before the runs are checked"),
        log=lambda line: None,
        waits=Waits(),
        load=lambda: None,
        journal=journal.append,
        apply_desired=lambda: acted.append("desired"),
        converge_infra=lambda: acted.append("infra"),
        runs_in_progress=lambda: P.runs_in_progress(store, STACK),
    )
    with pytest.raises(UserError) as e:
        P.pause(deps, by="ana")
    assert "2 pipeline run(s)" in e.value.message
    assert "train-1 (running)" in e.value.message and "train-2 (initializing)" in e.value.message
    assert "elsewhere" not in e.value.message
    assert journal == [] and acted == []

    for key in ("running", "initializing"):  # they finish; the other stack's run goes on
        store.update_run(runs[key].id, PipelineRunUpdate(status=ExecutionStatus.COMPLETED))
    assert P.runs_in_progress(store, STACK) == []
    assert P.runs_in_progress(store, "default") == ["elsewhere (running)"]
