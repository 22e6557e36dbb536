"""Stop and restart the database writers (the ZenML and MLflow servers) through Argo CD.

Argo CD self-heals: a Deployment scaled to zero by hand is scaled back within seconds while
auto-sync is on, and the root app re-applies its child Applications, auto-sync included. So
stopping suspends auto-sync on the root app first, then on the two server apps, and only then
scales their Deployments to zero and waits until their pods are gone. Starting undoes it in
reverse: scale back to the saved replica counts, wait for ready pods, resume auto-sync on the
server apps, then on the root app. The saved state is plain data, kept in the deployment
record while the servers are down, so an interrupted restore can still bring them back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ServiceUnavailable

if TYPE_CHECKING:
    from ..config import DeploymentConfig
    from ..gitops.kube import Kube

APP = ("argoproj.io/v1alpha1", "Application")
DEPLOYMENT = ("apps/v1", "Deployment")
WRITER_APPS = ("zenml_server", "mlflow")
WRITER_NAMESPACES = ("zenml", "mlflow")


@dataclass
class WriterState:
    """What `stop` changed: each app's auto-sync policy and each Deployment's replicas."""

    automated: dict[str, Any] = field(default_factory=dict)  # app -> spec.syncPolicy.automated
    replicas: dict[str, int] = field(default_factory=dict)  # "namespace/name" -> replicas

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WriterState:
        return cls(
            automated=dict(data.get("automated") or {}),
            replicas={k: int(v) for k, v in (data.get("replicas") or {}).items()},
        )


@dataclass
class Waits:
    timeout: float = 600.0
    poll: float = 3.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def until(
        self, pending: Callable[[], list[str]], error: Callable[[list[str]], Exception]
    ) -> None:
        """Poll until `pending()` names nothing; past the timeout, `error(what it last named)`."""
        from ..polling import poll_until

        last: list[str] = []

        def attempt() -> bool | None:
            last[:] = pending()
            return None if last else True

        poll_until(
            attempt,
            timeout=self.timeout,
            interval=self.poll,
            on_timeout=lambda: error(last),
            sleep=self.sleep,
            clock=self.clock,
        )


def _app_names(cfg: DeploymentConfig) -> list[str]:
    """Root first: it would otherwise re-apply the children's auto-sync."""
    n = cfg.names
    return [n.argocd_root_app, *(n.argocd_apps[k] for k in WRITER_APPS)]


def _deployments(kube: Kube, cfg: DeploymentConfig) -> list[dict[str, Any]]:
    out = []
    for key in WRITER_NAMESPACES:
        out += kube.list_objects(*DEPLOYMENT, namespace=cfg.names.namespaces[key])
    return out


def _key(dep: dict[str, Any]) -> str:
    meta = dep["metadata"]
    return f"{meta['namespace']}/{meta['name']}"


def _selector(dep: dict[str, Any]) -> str:
    labels = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _running_pods(kube: Kube, dep: dict[str, Any]) -> list[str]:
    pods = kube.list_objects(
        "v1", "Pod", namespace=dep["metadata"]["namespace"], label_selector=_selector(dep)
    )
    return [
        p["metadata"]["name"]
        for p in pods
        if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    ]


def stop(
    kube: Kube,
    cfg: DeploymentConfig,
    log: Callable[[str], None],
    waits: Waits,
    saved: WriterState | None = None,
    on_saved: Callable[[WriterState], None] | None = None,
) -> WriterState:
    """Suspend auto-sync and scale the servers to zero; returns what to restore.

    `saved` is the state of an earlier, interrupted stop: its values win over what is live
    now (the live values are then ours: auto-sync off, zero replicas)."""
    state = WriterState() if saved is None else WriterState.from_dict(saved.to_dict())
    ns = cfg.names.namespaces["argocd"]
    for app in _app_names(cfg):
        live = kube.get(*APP, app, ns)
        if live is None:
            continue
        automated = ((live.get("spec") or {}).get("syncPolicy") or {}).get("automated")
        state.automated.setdefault(app, automated)
        if on_saved is not None:
            on_saved(state)  # saved before it changes, so a crash can still undo it
        if automated is not None:
            log(f"suspending auto-sync of Argo CD application {app}")
            kube.merge_patch(*APP, app, {"spec": {"syncPolicy": {"automated": None}}}, ns)
    deployments = _deployments(kube, cfg)
    for dep in deployments:
        replicas = int((dep.get("spec") or {}).get("replicas") or 0)
        state.replicas.setdefault(_key(dep), replicas)
    if on_saved is not None:
        on_saved(state)
    for dep in deployments:
        meta = dep["metadata"]
        log(f"scaling {_key(dep)} to 0")
        kube.merge_patch(*DEPLOYMENT, meta["name"], {"spec": {"replicas": 0}}, meta["namespace"])
    waits.until(
        lambda: [p for dep in deployments for p in _running_pods(kube, dep)],
        lambda left: ServiceUnavailable(
            f"the server pods did not stop within {int(waits.timeout)}s: {', '.join(left)}",
            "nothing was restored; check them with `kubectl get pods -n zenml -n mlflow`",
        ),
    )
    return state


def start(
    kube: Kube,
    cfg: DeploymentConfig,
    state: WriterState,
    log: Callable[[str], None],
    waits: Waits,
) -> None:
    """Scale back, wait until the servers are ready, then resume auto-sync (root last)."""
    deployments = {_key(d): d for d in _deployments(kube, cfg)}
    for key, replicas in state.replicas.items():
        if key not in deployments:
            continue
        namespace, name = key.split("/", 1)
        log(f"scaling {key} back to {replicas}")
        kube.merge_patch(*DEPLOYMENT, name, {"spec": {"replicas": replicas}}, namespace)
    ns = cfg.names.namespaces["argocd"]
    try:
        _wait_ready(kube, state, waits)
    finally:
        # auto-sync comes back even when the pods are slow: Argo CD then owns them again
        for app in reversed(_app_names(cfg)):
            automated = state.automated.get(app)
            if automated is not None and kube.get(*APP, app, ns) is not None:
                log(f"resuming auto-sync of Argo CD application {app}")
                kube.merge_patch(*APP, app, {"spec": {"syncPolicy": {"automated": automated}}}, ns)


Workload = tuple[str, tuple[str, str], str, str, int]  # label, (api, kind), name, ns, replicas


def unready(
    kube: Kube, workloads: list[Workload], *, skip_missing: bool
) -> list[tuple[str, int, int]]:
    """(label, ready, wanted) of each workload with fewer ready replicas than wanted; one
    that does not exist counts as none ready, or not at all with `skip_missing`."""
    out = []
    for label, kind, name, namespace, replicas in workloads:
        live = kube.get(*kind, name, namespace)
        if live is None and skip_missing:
            continue
        ready = int(((live or {}).get("status") or {}).get("readyReplicas") or 0)
        if ready < replicas:
            out.append((label, ready, replicas))
    return out


def _wait_ready(kube: Kube, state: WriterState, waits: Waits) -> None:
    workloads: list[Workload] = []
    for key, replicas in state.replicas.items():
        namespace, name = key.split("/", 1)
        workloads.append((key, DEPLOYMENT, name, namespace, replicas))

    def pending() -> list[str]:
        left = unready(kube, workloads, skip_missing=True)
        return [f"{key} ({ready}/{want} ready)" for key, ready, want in left]

    waits.until(
        pending,
        lambda left: ServiceUnavailable(
            f"the servers were not ready within {int(waits.timeout)}s: {', '.join(left)}",
            "check their pods and logs; auto-sync is resumed so Argo CD keeps trying",
        ),
    )
