"""`pause` and `resume` against kmock: the desired state the product hands Argo CD, and the order.

The test plays Argo CD and the workload controllers as the real ones do: while Argo CD's own
pods run, it reads the root app the product applied, creates the children it lists, and sets
each chart's Deployments to the replica counts the chart reads from its values (1 when the
value is absent); the pods follow their Deployment. With Argo CD at zero nothing syncs. So a
pause that scaled Argo CD down before the apps, or rendered a desired state with pods in it,
leaves pods running. Cloud SQL and monitoring are the Pulumi program's (the fake-engine test).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.kube_kmock import FakeCluster
from tests.integration.test_gitops_kmock import cfg_named, outputs, status_for
from zenml_gcp_gitops.errors import UserError
from zenml_gcp_gitops.gitops.kube import Kube
from zenml_gcp_gitops.ops import pause as P
from zenml_gcp_gitops.ops.pause_run import apply_desired
from zenml_gcp_gitops.ops.writers import Waits

ARGO = "argocd"
# what each chart reads for its pod counts (the charts' own values.yaml keys)
CHART_PODS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "external_secrets": [
        ("external-secrets", ("replicaCount",)),
        ("external-secrets-webhook", ("webhook", "replicaCount")),
        ("external-secrets-cert-controller", ("certController", "replicaCount")),
    ],
    "cert_manager": [
        ("cert-manager", ("replicaCount",)),
        ("cert-manager-webhook", ("webhook", "replicaCount")),
        ("cert-manager-cainjector", ("cainjector", "replicaCount")),
    ],
    "ingress_nginx": [("ingress-nginx-controller", ("controller", "replicaCount"))],
    "zenml_server": [("zenml", ("zenml", "replicaCount"))],
    "mlflow": [("mlflow", ("replicaCount",))],
}
ARGO_WORKLOADS = [
    ("Deployment", "argocd-server", 1),
    ("Deployment", "argocd-repo-server", 2),
    ("StatefulSet", "argocd-application-controller", 1),
]


def _read(values: dict[str, Any], path: tuple[str, ...]) -> int:
    node: Any = values
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return 1  # the chart's default
        node = node[part]
    return int(node)


class Controllers:
    def __init__(self, cluster: FakeCluster) -> None:
        self.c = cluster
        self.now = 0.0
        self.events: list[str] = []
        self.app_namespaces: set[str] = set()

    def argo_running(self) -> bool:
        return any(p.startswith("argocd-") for p in self.c.names("Pod", ARGO))

    def _workload(self, kind: str, name: str, ns: str, replicas: int) -> None:
        if self.c.get(kind, name, ns) is None:
            self.c.put({
                "apiVersion": "apps/v1", "kind": kind,
                "metadata": {"name": name, "namespace": ns},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}},
            })  # fmt: skip
        elif int(self.c.get(kind, name, ns)["spec"].get("replicas", 0)) != replicas:
            self.c.patch(kind, name, ns, {"spec": {"replicas": replicas}})

    def _argo_sync(self) -> None:
        root = self.c.get("Application", "zenml-root", ARGO) or self._root()
        if root is None:
            return
        for child in root["spec"]["source"]["helm"]["valuesObject"]["resources"]:
            obj = copy.deepcopy(child)
            obj["status"] = status_for(child, "Synced", "Healthy")
            name = child["metadata"]["name"]
            live = self.c.get("Application", name, ARGO)
            if live is not None and live["spec"] != child["spec"]:
                self.c.remove("Application", name, ARGO)  # applied whole: dropped keys go
            self.c.put(obj)
            helm = child["spec"]["source"].get("helm")
            key = next((k for k in CHART_PODS if child["metadata"]["name"].endswith(k)), None)
            key = key or _key_of(child)
            if helm is None or key is None:
                continue
            ns = child["spec"]["destination"]["namespace"]
            self.app_namespaces.add(ns)
            for name, path in CHART_PODS[key]:
                self._workload("Deployment", name, ns, _read(helm["valuesObject"], path))

    def _root(self) -> dict[str, Any] | None:
        roots = [
            self.c.get("Application", n, ARGO)
            for n in self.c.names("Application", ARGO)
            if n.endswith("root")
        ]
        return roots[0] if roots else None

    def tick(self) -> None:
        if self.argo_running():
            self._argo_sync()
        for ns in {ARGO, *self.app_namespaces}:
            for kind in ("Deployment", "StatefulSet"):
                for name in self.c.names(kind, ns):
                    want = int(self.c.get(kind, name, ns)["spec"].get("replicas") or 0)
                    pods = sorted(p for p in self.c.names("Pod", ns) if p.startswith(name + "-"))
                    for p in pods[want:]:
                        self.c.remove("Pod", p, ns)
                    for i in range(len(pods), want):
                        self.c.put({
                            "apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": f"{name}-{i}", "namespace": ns},
                            "status": {"phase": "Running"},
                        })  # fmt: skip
                    self.c.patch(kind, name, ns, {"status": {"readyReplicas": want}})

    def app_pods(self) -> list[str]:
        return [f"{ns}/{p}" for ns in sorted(self.app_namespaces) for p in self.c.names("Pod", ns)]

    def waits(self) -> Waits:
        def sleep(seconds: float) -> None:
            self.now += seconds
            self.tick()

        return Waits(timeout=60, poll=1, sleep=sleep, clock=lambda: self.now)


def _key_of(child: dict[str, Any]) -> str | None:
    chart = child["spec"]["source"].get("chart")
    return {
        "external-secrets": "external_secrets",
        "cert-manager": "cert_manager",
        "ingress-nginx": "ingress_nginx",
        "zenml": "zenml_server",
        "mlflow": "mlflow",
    }.get(str(chart))


class ControlledKube(Kube):
    """The product's client; the controllers act after each of its writes."""

    def __init__(self, ctl: Controllers) -> None:
        super().__init__(ctl.c.api_client())
        self.ctl = ctl

    def apply(self, *args: Any, **kwargs: Any) -> str:
        out = super().apply(*args, **kwargs)
        self.ctl.tick()
        return out

    def merge_patch(self, *args: Any, **kwargs: Any) -> None:
        super().merge_patch(*args, **kwargs)
        if args[1] in ("Deployment", "StatefulSet") and kwargs.get("namespace", args[-1]) == ARGO:
            replicas = args[3]["spec"]["replicas"]
            self.ctl.events.append(f"argocd {replicas} with {len(self.ctl.app_pods())} app pods")
        self.ctl.tick()


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    fake = FakeCluster().start()
    try:
        yield fake
    finally:
        fake.stop()


class Stack:
    """A deployed stack: Argo CD running, the app-of-apps applied, a journal, a fake infra."""

    def __init__(self, cluster: FakeCluster, runs: list[str] | None = None) -> None:
        self.cfg = cfg_named("paused")
        self.ctl = Controllers(cluster)
        self.kube = ControlledKube(self.ctl)
        self.entry: dict[str, Any] | None = None
        self.runs = runs or []
        self.fail: dict[str, int] = {}  # step -> calls left before it is killed
        for kind, name, replicas in ARGO_WORKLOADS:
            self.ctl._workload(kind, name, ARGO, replicas)
        self.ctl.tick()
        apply_desired(self.kube, self.cfg, outputs(), False, self.ctl.waits())
        self.ctl.events.clear()

    def _step(self, name: str) -> None:
        self.ctl.events.append(name)
        if self.fail.get(name) == 0:
            self.fail.pop(name)
            raise KeyboardInterrupt  # the run is killed here
        if name in self.fail:
            self.fail[name] -= 1

    def journal(self, entry: dict[str, Any] | None) -> None:
        self.entry = copy.deepcopy(entry)

    def deps(self) -> P.PauseDeps:
        def desired() -> None:
            self._step("desired")
            paused = bool(self.entry) and not self.entry.get("resuming")  # type: ignore[union-attr]
            apply_desired(self.kube, self.cfg, outputs(), paused, self.ctl.waits())

        return P.PauseDeps(
            cfg=self.cfg,
            kube=lambda: self.kube,
            log=lambda line: None,
            waits=self.ctl.waits(),
            load=lambda: copy.deepcopy(self.entry),
            journal=self.journal,
            apply_desired=desired,
            converge_infra=lambda: self._step("infra"),
            runs_in_progress=lambda: list(self.runs),
            wait_running=lambda: self._step("servers answer"),
            check_stack=self.check_stack,
        )

    def check_stack(self) -> dict[str, Any]:
        self._step("stack checked")
        return {"stack": "registered", "paused_entry_left": self.entry is not None}

    def root_values(self, key: str) -> dict[str, Any]:
        root = self.ctl._root()
        assert root is not None
        name = self.cfg.names.argocd_apps[key]
        child = next(
            c for c in root["spec"]["source"]["helm"]["valuesObject"]["resources"]
            if c["metadata"]["name"] == name
        )  # fmt: skip
        return dict(child["spec"]["source"]["helm"]["valuesObject"])


def test_pause_zeroes_the_desired_state_then_argocd_then_sql_and_resume_reverses(
    cluster: FakeCluster,
) -> None:
    s = Stack(cluster)
    running = s.ctl.app_pods()
    assert any(p.startswith("zenml/") for p in running) and any(
        "cert-manager" in p for p in running
    )

    out = P.pause(s.deps(), by="ana@laptop")
    assert out["stage"] == "done" and out["by"] == "ana@laptop"
    # the desired state itself says zero: a sync (Argo CD is the one reading it) keeps it
    assert s.root_values("zenml_server")["zenml"]["replicaCount"] == 0
    assert s.root_values("mlflow")["replicaCount"] == 0
    assert s.root_values("cert_manager")["webhook"]["replicaCount"] == 0
    assert s.root_values("external_secrets")["certController"]["replicaCount"] == 0
    assert s.ctl.app_pods() == [] and not s.ctl.argo_running()
    # Argo CD went last, once no app pod was left; Cloud SQL after it
    assert s.ctl.events[0] == "desired"
    assert s.ctl.events[1:4] == ["argocd 0 with 0 app pods"] * 3
    assert s.ctl.events[4:] == ["infra"]
    assert s.entry is not None and s.entry["argocd"] == {
        f"{k}/{n}": r for k, n, r in ARGO_WORKLOADS
    }

    s.ctl.events.clear()
    result = P.resume(s.deps())
    assert result["resumed"] is True
    # reverse: Cloud SQL first, then Argo CD (to its old counts), then the apps
    assert s.ctl.events[0] == "infra"
    assert [e.split(" with")[0] for e in s.ctl.events[1:4]] == ["argocd 1", "argocd 2", "argocd 1"]
    # then the servers answer, the entry goes, and the stack is checked as `status` does
    assert s.ctl.events[4:] == ["desired", "servers answer", "stack checked"]
    assert result["stack"] == {"stack": "registered", "paused_entry_left": False}
    assert sorted(s.ctl.app_pods()) == sorted(running)
    assert s.root_values("zenml_server")["zenml"]["replicaCount"] >= 1
    assert s.entry is None


def test_pause_refuses_while_runs_are_in_progress_unless_forced(cluster: FakeCluster) -> None:
    s = Stack(cluster, runs=["training-2026_12_07 (running)"])
    with pytest.raises(UserError, match="1 pipeline run"):
        P.pause(s.deps(), by="ana")
    assert s.entry is None and s.ctl.events == [] and s.ctl.argo_running()
    out = P.pause(s.deps(), by="ana", force=True)
    assert out["stage"] == "done" and s.ctl.app_pods() == []


def test_pause_and_resume_are_idempotent_and_finish_after_a_kill(cluster: FakeCluster) -> None:
    s = Stack(cluster)
    s.fail = {"infra": 0}  # killed after Argo CD is down, before Cloud SQL stops
    with pytest.raises(KeyboardInterrupt):
        P.pause(s.deps(), by="ana")
    assert s.entry is not None and s.entry["stage"] == "infra"
    s.ctl.events.clear()
    P.pause(s.deps(), by="bob")  # picks up where it stopped: no second pass over the apps
    assert s.ctl.events == ["infra"] and s.entry["stage"] == "done" and s.entry["by"] == "ana"

    before = len(cluster.request_log())
    s.ctl.events.clear()
    P.pause(s.deps(), by="ana")  # already paused: no write, no Pulumi run
    assert s.ctl.events == []
    assert not [r for r in cluster.request_log()[before:] if r[0] in ("PATCH", "POST", "PUT")]

    s.fail = {"desired": 0}  # resume killed after Argo CD is back, before the apps
    with pytest.raises(KeyboardInterrupt):
        P.resume(s.deps())
    assert s.entry is not None and s.entry["resuming"] is True
    with pytest.raises(UserError, match="resume"):
        P.pause(s.deps(), by="ana")  # a half-done resume is finished first
    P.resume(s.deps())
    assert s.entry is None and s.ctl.app_pods() and s.ctl.argo_running()
    assert P.resume(s.deps())["resumed"] is False  # not paused: nothing to undo
