"""The GitOps phase against kmock, a stateful fake Kubernetes API server on a loopback port.

The test plays the controllers: it moves Application statuses (as Argo CD would), removes
load balancers and volumes (as GKE would), and checks what the product code does over HTTP.
The Argo CD install manifest is a small fake served from a local HTTP server with its sha256.
"""

from __future__ import annotations

import copy
import hashlib
import http.server
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes.kube_kmock import FakeCluster
from tests.support.argo_sim import status_for
from tests.support.typed_options import typed
from zenml_gcp_gitops.config import DeploymentConfig, build_config
from zenml_gcp_gitops.errors import PhaseError
from zenml_gcp_gitops.gitops import bootstrap as B
from zenml_gcp_gitops.gitops import health as H
from zenml_gcp_gitops.gitops.argocd_access import admin_password, server_pod
from zenml_gcp_gitops.gitops.kube import Kube
from zenml_gcp_gitops.gitops.render import Rendered, render
from zenml_gcp_gitops.outputs import InfraOutputs
from zenml_gcp_gitops.phases.base import PhaseContext
from zenml_gcp_gitops.phases.gitops import GitopsPhase

EXAMPLE = Path(__file__).resolve().parents[2] / "argocd" / "example"

FAKE_INSTALL = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: applications.argoproj.io}
spec: {group: argoproj.io, names: {kind: Application, plural: applications}, scope: Namespaced}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: appprojects.argoproj.io}
spec: {group: argoproj.io, names: {kind: AppProject, plural: appprojects}, scope: Namespaced}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: argocd-server, labels: {app.kubernetes.io/part-of: argocd}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: argocd-server, labels: {app.kubernetes.io/part-of: argocd}}
rules: [{apiGroups: ["*"], resources: ["*"], verbs: [get]}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: argocd-cm, labels: {app.kubernetes.io/name: argocd-cm, app.kubernetes.io/part-of: argocd}}
---
apiVersion: v1
kind: Service
metadata: {name: argocd-server, labels: {app.kubernetes.io/part-of: argocd}}
spec: {type: ClusterIP, ports: [{name: https, port: 443, targetPort: 8080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: argocd-server, labels: {app.kubernetes.io/part-of: argocd}}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: argocd-server}}
  template:
    metadata: {labels: {app.kubernetes.io/name: argocd-server}}
    spec: {containers: [{name: argocd-server, image: quay.io/argoproj/argocd:v3.5.0}]}
"""


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cluster() -> Iterator[FakeCluster]:
    fake = FakeCluster().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def install_source() -> Iterator[tuple[str, str]]:
    """(url, sha256) of the fake install manifest, served on a free loopback port."""
    body = FAKE_INSTALL.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield (
            f"http://127.0.0.1:{server.server_port}/install.yaml",
            hashlib.sha256(body).hexdigest(),
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def outputs() -> InfraOutputs:
    return InfraOutputs.model_validate(json.loads((EXAMPLE / "outputs.json").read_text()))


def cfg_named(name: str, repo: bool = False, **overrides: Any) -> DeploymentConfig:
    """The example config; without its GitOps repo unless `repo` (children inline)."""
    data = yaml.safe_load((EXAMPLE / "config.yaml").read_text())
    if not repo:
        data.pop("gitops_repo", None)
        data.pop("gitops_path", None)
    return build_config(None, {**data, "name": name, **overrides})


class Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.steps: list[str] = []

    def step(self, message: str) -> None:
        self.steps.append(message)

    def progress(self, done: int, total: int | None, current: str | None = None) -> None:
        pass

    def log(self, line: str) -> None:
        self.lines.append(line)


class FakeTime:
    """A clock and a sleep that runs the 'controllers' between polls."""

    def __init__(self, on_tick: Any = None) -> None:
        self.now = 0.0
        self.ticks = 0
        self.on_tick = on_tick

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.ticks += 1
        if self.on_tick is not None:
            self.on_tick(self.ticks)


def create_apps(
    cluster: FakeCluster, r: Rendered, sync: str = "OutOfSync", health: str = "Progressing"
) -> None:
    """What Argo CD's root app does: create the children (here with a first status)."""
    for a in r.apps:
        obj = copy.deepcopy(a.manifest)
        obj["status"] = status_for(a.manifest, sync, health)
        cluster.put(obj)


def set_status(
    cluster: FakeCluster, r: Rendered, key: str, sync: str, health: str, **extra: Any
) -> None:
    a = r.app(key)
    cluster.patch(
        "Application", a.name, "argocd", {"status": status_for(a.manifest, sync, health, **extra)}
    )


# ---------------------------------------------------------------- install and idempotency


def test_install_applies_manifest_settings_and_app_of_apps(
    cluster: FakeCluster, install_source: tuple[str, str], tmp_path: Path
) -> None:
    cfg = cfg_named("inst")
    r = render(cfg, outputs())
    kube = Kube(cluster.api_client())
    counts = B.bootstrap(kube, cfg, r, Recorder(), cache_dir=tmp_path, source=install_source)
    assert counts.get("created", 0) >= 10
    assert cluster.get("Namespace", "argocd") is not None
    assert cluster.get("CustomResourceDefinition", "applications.argoproj.io") is not None
    # namespaced install objects land in the argocd namespace
    assert cluster.get("Deployment", "argocd-server", "argocd") is not None
    assert cluster.get("Service", "argocd-server", "argocd")["spec"]["type"] == "ClusterIP"
    cm = cluster.get("ConfigMap", "argocd-cm", "argocd")
    assert "resource.customizations.health.argoproj.io_Application" in cm["data"]
    assert cm["data"]["users.anonymous.enabled"] == "false"
    assert (
        cluster.get("AppProject", cfg.names.argocd_project, "argocd")["spec"] == r.project["spec"]
    )
    assert cluster.get("Application", cfg.names.argocd_root_app, "argocd")["spec"] == r.root["spec"]
    assert cluster.get("Secret", cfg.names.argocd_repo_secrets["zenml_chart"], "argocd") is not None
    # server-side apply with field managers; our argocd-cm keys under their own manager
    patches = [(path, q) for m, path, q in cluster.requests() if m == "PATCH"]
    assert patches and all(
        q.get("fieldManager", "").startswith("zenml-gcp-gitops") for _, q in patches
    )
    assert all(q.get("force", "").lower() == "true" for _, q in patches)
    cm_managers = {
        q["fieldManager"] for path, q in patches if path.endswith("/configmaps/argocd-cm")
    }
    assert cm_managers == {"zenml-gcp-gitops", B.SETTINGS_MANAGER}
    # the download is cached under the checksum
    assert any(p.name.startswith("install-v3.5.0-") for p in tmp_path.iterdir())


def test_reapply_changes_nothing(
    cluster: FakeCluster, install_source: tuple[str, str], tmp_path: Path
) -> None:
    cfg = cfg_named("idem")
    r = render(cfg, outputs())
    kube = Kube(cluster.api_client())
    B.bootstrap(kube, cfg, r, None, cache_dir=tmp_path, source=install_source)
    before = len(cluster.request_log())
    counts = B.bootstrap(kube, cfg, r, None, cache_dir=tmp_path, source=install_source)
    writes = [m for m, _ in cluster.request_log()[before:] if m in ("POST", "PUT", "DELETE")]
    assert writes == []  # every apply is still sent (the server decides), nothing else
    assert set(counts) == {"unchanged"}
    # and a real change is applied, only to what changed
    cfg2 = cfg_named("idem", analytics=True)
    counts = B.bootstrap(
        kube, cfg2, render(cfg2, outputs()), None, cache_dir=tmp_path, source=install_source
    )
    assert counts.get("configured") == 1  # the root app (its children's values changed)
    # with a GitOps repo, the same change goes through Git: the bootstrap has nothing to do
    cfg3 = cfg_named("idem", repo=True)
    B.bootstrap(
        kube, cfg3, render(cfg3, outputs()), None, cache_dir=tmp_path, source=install_source
    )
    cfg4 = cfg_named("idem", repo=True, analytics=True)
    counts = B.bootstrap(
        kube, cfg4, render(cfg4, outputs()), None, cache_dir=tmp_path, source=install_source
    )
    assert set(counts) == {"unchanged"}


def test_private_repo_credentials_are_bootstrapped_before_the_root_app(
    cluster: FakeCluster, install_source: tuple[str, str], tmp_path: Path
) -> None:
    cfg = cfg_named("priv", repo=True)
    out = outputs()
    ids = dict(out.secret_ids, gitops_repo="priv-gitops-repo-token")
    r = render(cfg, out.model_copy(update={"secret_ids": ids}))
    before = len(cluster.requests())
    B.bootstrap(Kube(cluster.api_client()), cfg, r, None, cache_dir=tmp_path, source=install_source)
    patched = [path for m, path, _ in cluster.requests()[before:] if m == "PATCH"]
    order = [
        f"/applications/{cfg.names.argocd_apps['external_secrets']}",
        f"/clustersecretstores/{cfg.names.cluster_secret_store}",
        f"/externalsecrets/{cfg.names.argocd_repo_secrets['gitops']}",
        f"/applications/{cfg.names.argocd_root_app}",
    ]
    positions = [next(i for i, p in enumerate(patched) if p.endswith(suffix)) for suffix in order]
    assert positions == sorted(positions)


def test_checksum_mismatch_is_refused_and_not_cached(
    install_source: tuple[str, str], tmp_path: Path
) -> None:
    url, _ = install_source
    with pytest.raises(PhaseError, match="sha256"):
        B.fetch_install_manifest("v3.5.0", tmp_path, source=(url, "0" * 64))
    assert list(tmp_path.iterdir()) == []


def test_cached_manifest_needs_no_network(install_source: tuple[str, str], tmp_path: Path) -> None:
    url, sha = install_source
    docs = B.fetch_install_manifest("v3.5.0", tmp_path, source=(url, sha))
    again = B.fetch_install_manifest(
        "v3.5.0", tmp_path, source=("http://127.0.0.1:9/unreachable", sha)
    )
    assert docs == again and len(docs) == 7
    with pytest.raises(PhaseError, match="could not download"):
        B.fetch_install_manifest("v3.5.0", tmp_path / "empty", source=("http://127.0.0.1:9/x", sha))


# ---------------------------------------------------------------- the wait loop


def test_wait_follows_waves_from_progressing_to_healthy(cluster: FakeCluster) -> None:
    cfg = cfg_named("waitok")
    r = render(cfg, outputs())
    create_apps(cluster, r)
    order = [a.key for a in sorted(r.apps, key=lambda a: a.wave)]
    became_healthy: list[str] = []

    def controller(tick: int) -> None:
        # one app per tick turns Healthy, in wave order; the next wave's app is only touched
        # after the wave before it is done (as the real health check gates it)
        if tick <= len(order):
            key = order[tick - 1]
            set_status(cluster, r, key, "Synced", "Healthy")
            became_healthy.append(key)

    t = FakeTime(controller)
    rec = Recorder()
    timings: list[dict[str, Any]] = []
    states = H.wait_for_apps(
        Kube(cluster.api_client()), cfg, r, rec, H.WaitOptions(poll=5), t.sleep, t.clock, timings
    )
    # each wave's time is recorded for the plan: the apps of a wave turn Healthy one per tick
    per_wave = {w: sum(1 for a in r.apps if a.wave == w) for w in sorted({a.wave for a in r.apps})}
    assert [x["wave"] for x in timings] == list(per_wave)
    assert all(
        x["duration_s"] >= 5 * (n - 1) for x, n in zip(timings, per_wave.values(), strict=True)
    )
    assert [s.name for s in states] == [r.app(k).name for k in order]
    assert all(s.ready for s in states)
    assert rec.steps[0].startswith("Wave 0")
    assert any("OutOfSync/Progressing" in line and "wave 0" in line for line in rec.lines)
    assert any("Synced/Healthy" in line and r.app("mlflow").name in line for line in rec.lines)


def test_wait_does_not_trust_a_stale_verdict(cluster: FakeCluster) -> None:
    cfg = cfg_named("stale")
    r = render(cfg, outputs())
    create_apps(cluster, r, "Synced", "Healthy")
    a = r.app("external_secrets")
    old = copy.deepcopy(a.manifest["spec"])
    old["source"]["targetRevision"] = "0.0.1"  # status compared against an older spec
    cluster.patch(
        "Application",
        a.name,
        "argocd",
        {
            "status": {
                "sync": {
                    "status": "Synced",
                    "comparedTo": {"source": old["source"], "destination": old["destination"]},
                },
                "health": {"status": "Healthy"},
            }
        },
    )
    t = FakeTime(
        lambda tick: (
            set_status(cluster, r, "external_secrets", "Synced", "Healthy") if tick == 3 else None
        )
    )
    H.wait_for_apps(
        Kube(cluster.api_client()), cfg, r, None, H.WaitOptions(poll=5), t.sleep, t.clock
    )
    assert t.ticks == 3  # it waited until the verdict was about the current spec


def test_degraded_app_fails_with_diagnosis_and_fix(cluster: FakeCluster) -> None:
    cfg = cfg_named("degr")
    r = render(cfg, outputs())
    create_apps(cluster, r, "Synced", "Healthy")
    app = r.app("zenml_server")
    cluster.put(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "zenml-server-abc.1", "namespace": "zenml"},
            "involvedObject": {"kind": "Deployment", "name": "zenml-server", "namespace": "zenml"},
            "type": "Warning",
            "reason": "FailedCreate",
            "message": 'secret "zenml-db" not found',
            "lastTimestamp": "2026-11-25T18:00:00Z",
        }
    )
    set_status(
        cluster,
        r,
        "zenml_server",
        "Synced",
        "Degraded",
        conditions=[
            {
                "type": "SyncError",
                "message": "one or more synchronization tasks completed unsuccessfully",
            }
        ],
        operationState={"phase": "Failed", "message": "one or more objects failed to apply"},
        resources=[
            {
                "kind": "Deployment",
                "namespace": "zenml",
                "name": "zenml-server",
                "status": "Synced",
                "health": {
                    "status": "Degraded",
                    "message": "Deployment exceeded its progress deadline",
                },
            },
            {
                "kind": "Service",
                "namespace": "zenml",
                "name": "zenml-server",
                "status": "Synced",
                "health": {"status": "Healthy"},
            },
        ],
    )
    t = FakeTime()
    rec = Recorder()
    with pytest.raises(PhaseError) as err:
        H.wait_for_apps(
            Kube(cluster.api_client()),
            cfg,
            r,
            rec,
            H.WaitOptions(poll=5, degraded_grace=10),
            t.sleep,
            t.clock,
        )
    e = err.value
    assert app.name in e.message and f"wave {app.wave}" in e.message and "Degraded" in e.message
    assert "Secret the chart needs is missing" in (e.hint or "")
    text = "\n".join(rec.lines)
    assert "condition SyncError: one or more synchronization tasks" in text
    assert "last operation Failed: one or more objects failed to apply" in text
    assert (
        "Deployment zenml/zenml-server: Synced/Degraded Deployment exceeded its progress deadline"
        in text
    )
    assert 'event Warning FailedCreate: secret "zenml-db" not found' in text
    assert "Service zenml/zenml-server" not in text  # healthy resources are not listed
    assert t.now >= 10  # Degraded had its grace period (Argo retries) before failing


def test_stuck_wave_times_out_naming_the_app(cluster: FakeCluster) -> None:
    cfg = cfg_named("stuck")
    r = render(cfg, outputs())
    create_apps(cluster, r, "Synced", "Healthy")
    set_status(cluster, r, "platform", "Synced", "Progressing")
    t = FakeTime()
    rec = Recorder()
    with pytest.raises(PhaseError) as err:
        H.wait_for_apps(
            Kube(cluster.api_client()),
            cfg,
            r,
            rec,
            H.WaitOptions(poll=5, wave_timeout=60),
            t.sleep,
            t.clock,
        )
    assert r.app("platform").name in err.value.message
    assert "within 60s" in err.value.message
    assert 55 <= t.now <= 70
    # the lower waves passed, the platform's held
    assert rec.steps[-1].startswith(f"Wave {r.app('platform').wave}")


def test_missing_child_app_is_diagnosed(cluster: FakeCluster) -> None:
    cfg = cfg_named("nochild")
    r = render(cfg, outputs())
    t = FakeTime()
    rec = Recorder()
    with pytest.raises(PhaseError, match="within 10s"):
        H.wait_for_apps(
            Kube(cluster.api_client()),
            cfg,
            r,
            rec,
            H.WaitOptions(poll=5, wave_timeout=10),
            t.sleep,
            t.clock,
        )
    assert any("the Application does not exist" in line for line in rec.lines)


# ---------------------------------------------------------------- address check


def test_gateway_address_must_be_the_static_ip(cluster: FakeCluster) -> None:
    cfg = cfg_named("addr")
    out = outputs()
    kube = Kube(cluster.api_client())
    gw = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": cfg.names.gateway, "namespace": "gateway"},
    }
    cluster.put(gw)  # no address yet: the load balancer is being provisioned

    def gke(tick: int) -> None:
        if tick == 2:
            cluster.patch(
                "Gateway",
                cfg.names.gateway,
                "gateway",
                {"status": {"addresses": [{"type": "IPAddress", "value": out.ingress_ip}]}},
            )

    t = FakeTime(gke)
    assert (
        H.check_ingress_address(kube, cfg, out, H.WaitOptions(poll=5), t.sleep, t.clock)
        == out.ingress_ip
    )
    assert t.ticks == 2
    # a different address fails at once
    cluster.patch(
        "Gateway",
        cfg.names.gateway,
        "gateway",
        {"status": {"addresses": [{"type": "IPAddress", "value": "198.51.100.1"}]}},
    )
    t = FakeTime()
    with pytest.raises(
        PhaseError, match=re.escape("198.51.100.1, not the reserved static IP 203.0.113.10")
    ):
        H.check_ingress_address(kube, cfg, out, H.WaitOptions(poll=5), t.sleep, t.clock)
    assert t.ticks == 0
    # and no address at all times out
    cluster.patch("Gateway", cfg.names.gateway, "gateway", {"status": {"addresses": []}})
    t = FakeTime()
    with pytest.raises(PhaseError, match="no address after 30s"):
        H.check_ingress_address(
            kube, cfg, out, H.WaitOptions(poll=5, wave_timeout=30), t.sleep, t.clock
        )
    cluster.remove("Gateway", cfg.names.gateway, "gateway")


def test_nginx_address_is_read_from_the_controller_service(cluster: FakeCluster) -> None:
    cfg = cfg_named("ngx", ingress="nginx")
    out = outputs()
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "ingress-nginx-controller", "namespace": "ingress-nginx"},
        "spec": {"type": "LoadBalancer"},
        "status": {"loadBalancer": {"ingress": [{"ip": out.ingress_ip}]}},
    }
    cluster.put(svc)
    assert H.check_ingress_address(Kube(cluster.api_client()), cfg, out) == out.ingress_ip
    cluster.remove("Service", "ingress-nginx-controller", "ingress-nginx")


# ---------------------------------------------------------------- teardown


class RecordingKube(Kube):
    """Records each delete with what was still left at that moment."""

    def __init__(self, cluster: FakeCluster, cfg: DeploymentConfig) -> None:
        super().__init__(cluster.api_client())
        self.cluster = cluster
        self.cfg = cfg
        self.deletes: list[tuple[str, str, list[str]]] = []

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        propagation: str = "Foreground",
    ) -> bool:
        self.deletes.append((kind, name, B._leftovers(self, self.cfg)))
        return super().delete(api_version, kind, name, namespace, propagation)


def _seed_stack(cluster: FakeCluster, cfg: DeploymentConfig, r: Rendered) -> None:
    create_apps(cluster, r, "Synced", "Healthy")
    root = copy.deepcopy(r.root)
    root["metadata"]["finalizers"] = []  # teardown must add the cascade finalizer itself
    cluster.put(root)
    cluster.put(copy.deepcopy(r.project))
    cluster.put(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "ingress-nginx-controller", "namespace": "ingress-nginx"},
            "spec": {"type": "LoadBalancer"},
        }
    )
    cluster.put(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "zenml-server", "namespace": "zenml"},
            "spec": {"type": "ClusterIP"},
        }
    )
    cluster.put(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "mlflow"},
            "spec": {},
        }
    )
    cluster.put(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": cfg.names.gateway, "namespace": "gateway"},
        }
    )
    cluster.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd"}})


def test_teardown_cascades_waits_for_load_balancers_then_uninstalls(cluster: FakeCluster) -> None:
    cfg = cfg_named("zenml")
    r = render(cfg, outputs())
    _seed_stack(cluster, cfg, r)
    events: list[str] = []

    def argo_and_gke(tick: int) -> None:
        root = cluster.get("Application", cfg.names.argocd_root_app, "argocd")
        if root and root["metadata"].get("deletionTimestamp") and tick == 1:
            # Argo CD: the finalizer is there, so it deletes the children and their resources
            assert "resources-finalizer.argocd.argoproj.io" in root["metadata"]["finalizers"]
            for a in r.apps:
                cluster.remove("Application", a.name, "argocd")
            cluster.remove("Application", cfg.names.argocd_root_app, "argocd")
            events.append("apps removed")
        if tick == 3:  # GKE releases the load balancers a while later
            cluster.remove("Gateway", cfg.names.gateway, "gateway")
            cluster.remove("Service", "ingress-nginx-controller", "ingress-nginx")
            events.append("load balancers released")
        if tick == 5:
            cluster.remove("PersistentVolumeClaim", "data", "mlflow")
            events.append("disks released")

    t = FakeTime(argo_and_gke)
    kube = RecordingKube(cluster, cfg)
    rec = Recorder()
    steps = B.teardown(
        kube, cfg, rec, H.WaitOptions(poll=5, teardown_timeout=300), t.sleep, t.clock
    )
    assert steps == ["delete-root", "apps-gone", "cloud-resources-gone", "argocd-uninstalled"]
    assert events == ["apps removed", "load balancers released", "disks released"]
    kinds = [k for k, _, _ in kube.deletes]
    assert kinds[0] == "Application"  # the root, first
    # Argo CD is uninstalled only once nothing that holds a load balancer or disk is left
    for kind, _, left in kube.deletes[1:]:
        assert left == [], f"{kind} deleted while {left} remained"
    assert "Namespace" in kinds and "CustomResourceDefinition" in kinds
    assert (
        kinds.index("AppProject")
        < kinds.index("Namespace")
        < kinds.index("CustomResourceDefinition")
    )
    assert any("Service ingress-nginx/ingress-nginx-controller" in line for line in rec.lines)
    assert cluster.get("Namespace", "argocd") is None


def test_teardown_times_out_on_a_stuck_load_balancer(cluster: FakeCluster) -> None:
    cfg = cfg_named("zenml")
    cluster.put(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "stuck-lb", "namespace": "mlflow"},
            "spec": {"type": "LoadBalancer"},
        }
    )
    t = FakeTime()
    with pytest.raises(PhaseError) as err:
        B.teardown(
            Kube(cluster.api_client()),
            cfg,
            None,
            H.WaitOptions(poll=5, teardown_timeout=30),
            t.sleep,
            t.clock,
        )
    assert "Service mlflow/stuck-lb" in err.value.message
    assert "forwarding rules" in (err.value.hint or "")
    cluster.remove("Service", "stuck-lb", "mlflow")


# ---------------------------------------------------------------- the phase, status, argocd access


def test_phase_run_status_against_kmock(
    cluster: FakeCluster, install_source: tuple[str, str], tmp_path: Path
) -> None:
    cfg = cfg_named("phase")
    out = outputs()
    r = render(cfg, out)
    create_apps(cluster, r, "Synced", "Healthy")  # as if Argo CD had already converged
    cluster.put(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": cfg.names.gateway, "namespace": "gateway"},
            "status": {"addresses": [{"value": out.ingress_ip}]},
        }
    )
    ctx = PhaseContext(
        cfg=cfg,
        reporter=Recorder(),
        **typed(
            {
                "kube_api_client": cluster.api_client(),
                "argocd_install_source": install_source,
                "argocd_cache_dir": str(tmp_path),
                "poll": 0.01,
                "wave_timeout": 5,
            }
        ),
        _infra=out,
    )
    phase = GitopsPhase()
    result = phase.run(ctx)
    assert result["zenml_url"] == "https://zenml.203.0.113.10.nip.io"
    assert result["gateway_ip"] == out.ingress_ip
    assert result["applications"] == [a.name for a in r.apps]
    # the first completed run keeps the install and per-wave times for the plan
    timed = result["durations"]
    assert [w["wave"] for w in timed["waves"]] == sorted({a.wave for a in r.apps})
    assert timed["argocd_install_s"] >= 0
    status = phase.status(ctx)
    assert status["applications"][0]["name"] == cfg.names.argocd_root_app
    healthy = [a for a in status["applications"] if a["name"] != cfg.names.argocd_root_app]
    assert healthy and all(a["health"] == "Healthy" and a["sync"] == "Synced" for a in healthy)
    assert status["zenml_reachable"] is False  # nip.io of a documentation IP: no route, no hang
    cluster.remove("Gateway", cfg.names.gateway, "gateway")


def test_admin_password_and_server_pod(cluster: FakeCluster) -> None:
    import base64

    from zenml_gcp_gitops.errors import ServiceUnavailable, UserError

    kube = Kube(cluster.api_client())
    with pytest.raises(UserError, match="argocd-initial-admin-secret"):
        admin_password(kube, "argocd-pw")
    cluster.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "argocd-initial-admin-secret", "namespace": "argocd-pw"},
            "data": {"password": base64.b64encode(b"s3cr3t-value").decode()},
        }
    )
    assert admin_password(kube, "argocd-pw") == "s3cr3t-value"
    with pytest.raises(ServiceUnavailable):
        server_pod(kube, "argocd-pw")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "argocd-server-1",
            "namespace": "argocd-pw",
            "labels": {"app.kubernetes.io/name": "argocd-server"},
        },
        "status": {"phase": "Running"},
    }
    cluster.put(pod)
    assert server_pod(kube, "argocd-pw") == "argocd-server-1"


def test_phase_destroy_without_a_cluster_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing recorded: it must not try to connect anywhere, nor tear anything down."""
    import zenml_gcp_gitops.gitops.bootstrap as bootstrap

    tried: list[str] = []
    monkeypatch.setattr(
        GitopsPhase, "_connect", lambda self, ctx, infra=None: tried.append(f"connect {infra}")
    )
    monkeypatch.setattr(bootstrap, "teardown", lambda *a, **k: tried.append("teardown"))
    ctx = PhaseContext(cfg=cfg_named("never"))
    GitopsPhase().destroy(ctx)
    assert tried == []
    # the same phase with a recorded cluster does connect and tear down
    ctx = PhaseContext(cfg=cfg_named("never"), recorded={"infra": {"outputs": {"x": 1}}})
    GitopsPhase().destroy(ctx)
    assert tried == ["connect None", "teardown"]


def test_phase_destroy_after_a_run_died_while_infra_and_gitops_both_ran(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Infra never finished, but it recorded the cluster's side before gitops started there:
    destroy reaches that cluster, so the load balancers Argo CD's apps made are removed
    before the network is."""
    import zenml_gcp_gitops.gitops.bootstrap as bootstrap
    from zenml_gcp_gitops.outputs import handoff_fields

    seen: list[Any] = []
    monkeypatch.setattr(
        GitopsPhase, "_connect", lambda self, ctx, infra=None: seen.append(infra) or "kube"
    )
    monkeypatch.setattr(bootstrap, "teardown", lambda kube, *a, **k: seen.append(kube))
    full = json.loads((EXAMPLE / "outputs.json").read_text())
    handoff = {k: v for k, v in full.items() if k in handoff_fields()}
    ctx = PhaseContext(cfg=cfg_named("died"), recorded={"infra": {"handoff": handoff}})
    GitopsPhase().destroy(ctx)
    infra, kube = seen
    assert (infra.cluster_endpoint, infra.cluster_ca_certificate) == (
        full["cluster_endpoint"],
        full["cluster_ca_certificate"],
    )
    assert kube == "kube"


def test_phase_status_reports_an_unreachable_cluster(tmp_path: Path) -> None:
    from kubernetes import client

    conf = client.Configuration()
    conf.host = "http://127.0.0.1:9"  # discard port: connection refused
    conf.retries = 0
    ctx = PhaseContext(
        cfg=cfg_named("gone"),
        **typed({"kube_api_client": client.ApiClient(conf)}),
        _infra=outputs(),
    )
    status = GitopsPhase().status(ctx)
    assert status["applications"] == []
    assert "did not answer" in status["cluster_error"]


def test_teardown_without_a_running_argocd_controller_says_so(cluster: FakeCluster) -> None:
    cfg = cfg_named("noctl")
    r = render(cfg, outputs())
    cluster.put(copy.deepcopy(r.root))
    t = FakeTime()
    with pytest.raises(PhaseError) as err:
        B.teardown(
            Kube(cluster.api_client()),
            cfg,
            None,
            H.WaitOptions(poll=5, teardown_timeout=20),
            t.sleep,
            t.clock,
        )
    assert cfg.names.argocd_root_app in err.value.message
    assert "application controller is not running" in (err.value.hint or "")
    cluster.remove("Application", cfg.names.argocd_root_app, "argocd")


# ---------------------------------------------------------------- server-side apply prunes


def test_a_field_removed_from_the_template_leaves_the_live_object(cluster: FakeCluster) -> None:
    kube = Kube(cluster.api_client())
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "ssa-prune", "namespace": "default", "labels": {"a": "1", "b": "2"}},
        "data": {"keep": "1", "drop": "2"},
    }
    assert kube.apply(copy.deepcopy(cm)) == "created"
    assert kube.apply(copy.deepcopy(cm)) == "unchanged"
    smaller = copy.deepcopy(cm)
    del smaller["data"]["drop"], smaller["metadata"]["labels"]["b"]
    before = len(cluster.requests())
    # the desired object is a subset of the live one: it must still be sent
    assert kube.apply(smaller) == "configured"
    sent = [q for m, p, q in cluster.requests()[before:] if m == "PATCH"]
    assert sent and all(q.get("fieldManager") == "zenml-gcp-gitops" for q in sent)
    live = cluster.get("ConfigMap", "ssa-prune", "default")
    assert live is not None
    assert live["data"] == {"keep": "1"} and live["metadata"]["labels"] == {"a": "1"}


def test_objects_the_bootstrap_no_longer_renders_are_deleted(
    cluster: FakeCluster, install_source: tuple[str, str], tmp_path: Path
) -> None:
    cfg = cfg_named("prune", repo=True)
    out = outputs()
    private = out.model_copy(
        update={"secret_ids": dict(out.secret_ids, gitops_repo="prune-gitops-repo")}
    )
    kube = Kube(cluster.api_client())
    argocd_ns = cfg.names.namespaces["argocd"]
    repo = cfg.names.argocd_repo_secrets["gitops"]
    # someone else's repository Secret in the same namespace, without our label
    cluster.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "team-repo",
                "namespace": argocd_ns,
                "labels": {"argocd.argoproj.io/secret-type": "repository"},
            },
        }
    )
    B.bootstrap(kube, cfg, render(cfg, private), None, cache_dir=tmp_path, source=install_source)
    assert cluster.get("ExternalSecret", repo, argocd_ns) is not None
    # the repo turns public: its credentials ExternalSecret is no longer rendered
    counts = B.bootstrap(
        kube, cfg, render(cfg, out), None, cache_dir=tmp_path, source=install_source
    )
    assert counts.get("pruned") == 1
    assert cluster.get("ExternalSecret", repo, argocd_ns) is None
    assert cluster.get("Secret", repo, argocd_ns) is not None  # the public declaration
    assert cluster.get("Secret", "team-repo", argocd_ns) is not None  # not ours: untouched


# ---------------------------------------------------------------- a private GitOps repo


def test_private_repo_path_from_the_program_to_the_cluster(
    cluster: FakeCluster, install_source: tuple[str, str], tmp_path: Path
) -> None:
    """The program makes the credential slot (no version), grants ESO access and exports
    its ID; render turns that into the repository ExternalSecret; the bootstrap applies it
    before the root app. No credential and no token-bearing URL anywhere."""
    from zenml_gcp_gitops.plan import run_program

    cfg = cfg_named("privpath", repo=True, gitops_repo_private=True)
    run = run_program(cfg)
    slot = cfg.names.secrets["gitops_repo"]
    assert run.outputs["secret_ids"]["gitops_repo"] == slot
    secrets = [r for r in run.registrations if r.type == "gcp:secretmanager/secret:Secret"]
    assert any(r.inputs.get("secretId") == slot for r in secrets)
    versions = [
        r for r in run.registrations if r.type == "gcp:secretmanager/secretVersion:SecretVersion"
    ]
    assert not any(r.name.startswith("gitops-repo") for r in versions)  # the user adds it
    grants = [
        r
        for r in run.registrations
        if r.type == "gcp:secretmanager/secretIamMember:SecretIamMember"
        and r.inputs.get("secretId") == slot
    ]
    assert len(grants) == 1 and grants[0].inputs["role"] == "roles/secretmanager.secretAccessor"
    assert f"{cfg.names.service_accounts['external_secrets']}@" in str(grants[0].inputs["member"])

    out = InfraOutputs.from_mapping(run.outputs)
    r = render(cfg, out)
    repo = cfg.names.argocd_repo_secrets["gitops"]
    es = next(o for o in r.before_root if o["kind"] == "ExternalSecret")
    assert es["metadata"]["name"] == repo
    assert {d["remoteRef"]["key"] for d in es["spec"]["data"]} == {slot}
    assert not any(o["kind"] == "Secret" and o["metadata"]["name"] == repo for o in r.bootstrap)
    kube = Kube(cluster.api_client())
    B.bootstrap(kube, cfg, r, None, cache_dir=tmp_path, source=install_source)
    live = cluster.get("ExternalSecret", repo, cfg.names.namespaces["argocd"])
    assert live is not None and live["spec"]["target"]["template"]["data"]["url"] == cfg.gitops_repo
    assert cluster.get("Secret", repo, cfg.names.namespaces["argocd"]) is None  # ESO writes it
    # never a token in a repository URL (the MLflow auth ini's DB URI is an ESO template
    # filled in-cluster, so only repository schemes are checked)
    assert not re.search(r"(?:https?|ssh|git)://[^/@\s]+@", json.dumps(r.objects))
