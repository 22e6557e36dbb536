"""Pause and resume a deployed stack: keep every byte and every name, stop what bills by hour.

Pause, in order: the desired state says paused (the record entry, read by the gitops and
infra phases), Argo CD scales the servers and operators to zero from it, Argo CD itself
scales to zero last (it cannot sync itself away), then the Pulumi program stops Cloud SQL
and turns the uptime checks and alerts off. Resume runs the reverse: Cloud SQL and
monitoring, Argo CD, then the apps from the running desired state.

Each step is journaled in `record.operations["paused"]` before it acts, so a killed run
re-runs from where it stopped; both commands are idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import ServiceUnavailable, UserError
from .writers import DEPLOYMENT, Waits, Workload, unready

if TYPE_CHECKING:
    from ..config import DeploymentConfig
    from ..gitops.kube import Kube

KEY = "paused"  # record.operations key
STATEFULSET = ("apps/v1", "StatefulSet")
# pause stages, in order; the journal holds the last one started
STAGES = ("servers", "argocd", "infra", "done")
ACTIVE = ("running", "initializing")  # run statuses that refuse a pause


@dataclass
class PauseDeps:
    cfg: DeploymentConfig
    kube: Callable[[], Kube]  # connects lazily: a paused cluster may need no call at all
    log: Callable[[str], None]
    waits: Waits
    load: Callable[[], dict[str, Any] | None]  # the journal entry as the record holds it now
    journal: Callable[[dict[str, Any] | None], None]  # save it (None: drop it)
    apply_desired: Callable[[], None]  # the app-of-apps rendered for the journal's state
    converge_infra: Callable[[], None]  # the Pulumi program with the journal's state
    runs_in_progress: Callable[[], list[str]] | None = None  # ZenML; None: not asked
    wait_running: Callable[[], None] | None = None  # resume: every app Healthy, servers up
    check_stack: Callable[[], dict[str, Any]] | None = None  # resume: as `status` does


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _stage_done(entry: dict[str, Any], stage: str) -> bool:
    return STAGES.index(str(entry.get("stage", "servers"))) > STAGES.index(stage)


def pause(deps: PauseDeps, by: str, force: bool = False) -> dict[str, Any]:
    """Pause the stack; a finished pause is left as it is."""
    entry = deps.load()
    if entry and entry.get("resuming"):
        raise UserError(
            "a resume of this stack was interrupted",
            "run `zenml-gcp-gitops resume` to finish it, then pause again",
        )
    if entry and entry.get("stage") == "done":
        deps.log(f"already paused since {entry.get('at')} by {entry.get('by')}")
        return entry
    if not entry:
        if not force and deps.runs_in_progress is not None:
            runs = deps.runs_in_progress()
            if runs:
                raise UserError(
                    f"{len(runs)} pipeline run(s) in progress on the stack: {', '.join(runs)}",
                    "wait for them to finish, or pass --force (they then fail)",
                )
        entry = {"at": _now(), "by": by, "stage": "servers"}
        deps.journal(entry)  # from here on the desired state says paused
    cfg = deps.cfg
    if not _stage_done(entry, "servers"):
        deps.log("scaling the servers and operators to zero through Argo CD")
        deps.apply_desired()
        _wait_pods_gone(deps, [cfg.names.namespaces[k] for k in _app_namespaces(cfg)])
        entry = {**entry, "stage": "argocd"}
        deps.journal(entry)
    if not _stage_done(entry, "argocd"):
        entry = _scale_argocd_down(deps, entry)
        entry = {**entry, "stage": "infra"}
        deps.journal(entry)
    if not _stage_done(entry, "infra"):
        deps.log("stopping Cloud SQL and turning monitoring off (Pulumi)")
        deps.converge_infra()
        entry = {**entry, "stage": "done"}
        deps.journal(entry)
    return entry


def resume(deps: PauseDeps) -> dict[str, Any]:
    """Undo a pause in reverse order; on a running stack only waits and checks."""
    entry = deps.load()
    if entry:
        if not entry.get("resuming"):
            entry = {**entry, "resuming": True}
            deps.journal(entry)  # from here on the desired state says running
        deps.log("starting Cloud SQL and turning monitoring on (Pulumi)")
        deps.converge_infra()
        _scale_argocd_up(deps, entry)
        deps.log("starting the operators and servers through Argo CD")
        deps.apply_desired()
    if deps.wait_running is not None:
        deps.wait_running()
    if entry:
        deps.journal(None)
    result: dict[str, Any] = {"resumed": bool(entry), "paused_since": (entry or {}).get("at")}
    if deps.check_stack is not None:
        result["stack"] = deps.check_stack()
    return result


def _app_namespaces(cfg: DeploymentConfig) -> list[str]:
    from ..gitops.paused import PAUSED_NAMESPACES

    keys = [k for k in PAUSED_NAMESPACES if k in cfg.names.argocd_apps]
    if cfg.ingress != "nginx":
        keys = [k for k in keys if k != "ingress_nginx"]
    return list(dict.fromkeys(PAUSED_NAMESPACES[k] for k in keys))


def _live_pods(kube: Kube, namespace: str) -> list[str]:
    return [
        f"{namespace}/{p['metadata']['name']}"
        for p in kube.list_objects("v1", "Pod", namespace=namespace)
        if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    ]


def _wait_pods_gone(deps: PauseDeps, namespaces: list[str]) -> None:
    kube, waits = deps.kube(), deps.waits
    waits.until(
        lambda: [p for ns in namespaces for p in _live_pods(kube, ns)],
        lambda left: ServiceUnavailable(
            f"pods still running after {int(waits.timeout)}s: {', '.join(left[:8])}",
            "check Argo CD's view (`zenml-gcp-gitops status`); re-run `pause` to go on",
        ),
    )


def _workloads(kube: Kube, ns: str) -> list[tuple[tuple[str, str], dict[str, Any]]]:
    return [
        (kind, o)
        for kind in (DEPLOYMENT, STATEFULSET)
        for o in kube.list_objects(*kind, namespace=ns)
    ]


def _scale_argocd_down(deps: PauseDeps, entry: dict[str, Any]) -> dict[str, Any]:
    kube, ns = deps.kube(), deps.cfg.names.namespaces["argocd"]
    saved = dict(entry.get("argocd") or {})
    found = _workloads(kube, ns)
    for kind, obj in found:
        saved.setdefault(f"{kind[1]}/{obj['metadata']['name']}", obj["spec"].get("replicas", 1))
    entry = {**entry, "argocd": saved}
    deps.journal(entry)  # the counts are kept before anything changes
    for kind, obj in found:
        deps.log(f"scaling Argo CD {kind[1]} {obj['metadata']['name']} to 0")
        kube.merge_patch(*kind, obj["metadata"]["name"], {"spec": {"replicas": 0}}, ns)
    _wait_pods_gone(deps, [ns])
    return entry


def _scale_argocd_up(deps: PauseDeps, entry: dict[str, Any]) -> None:
    kube, ns, waits = deps.kube(), deps.cfg.names.namespaces["argocd"], deps.waits
    kinds = {"Deployment": DEPLOYMENT, "StatefulSet": STATEFULSET}
    want: dict[str, int] = {}
    for key, replicas in (entry.get("argocd") or {}).items():
        kind, name = key.split("/", 1)
        if kube.get(*kinds[kind], name, ns) is None:
            continue
        deps.log(f"scaling Argo CD {kind} {name} back to {replicas}")
        kube.merge_patch(*kinds[kind], name, {"spec": {"replicas": int(replicas)}}, ns)
        want[key] = int(replicas)

    workloads: list[Workload] = []
    for key, replicas in want.items():
        kind, name = key.split("/", 1)
        workloads.append((name, kinds[kind], name, ns, replicas))

    def pending() -> list[str]:
        left = unready(kube, workloads, skip_missing=False)
        return [f"{name} ({ready}/{wanted})" for name, ready, wanted in left]

    waits.until(
        pending,
        lambda left: ServiceUnavailable(
            f"Argo CD was not ready within {int(waits.timeout)}s: {', '.join(left)}",
            f"check `kubectl -n {ns} get pods`; re-run `resume` to go on",
        ),
    )


def runs_in_progress(store: Any, stack_name: str) -> list[str]:
    """Names of the runs on this stack the ZenML server reports running or initializing."""
    from zenml.models import PipelineRunFilter, StackFilter

    stacks = store.list_stacks(StackFilter(name=stack_name)).items
    out: list[str] = []
    for stack in stacks:
        for status in ACTIVE:
            page = store.list_runs(PipelineRunFilter(stack_id=stack.id, status=status, size=50))
            out += [f"{r.name} ({status})" for r in page.items]
    return out
