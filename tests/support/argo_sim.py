"""Argo CD and GKE's Gateway controller as a deploy sees them, on kmock, in a thread.

While the app-of-apps exists, each child it lists is created or updated Synced and Healthy
(Degraded for the app named in `degrade`, Progressing for `hold`), the Gateway a manifests app carries is put in
the cluster with the address GKE would give it (the static IP in its listeners' nip.io
hosts), and `on_tick(sim)` lets a test act on what it sees (open a gate, send a signal).

With `app_seconds` (app name -> seconds) Argo CD also takes time, by its rules: nothing syncs
until `install_seconds` after the argocd-server Deployment appears; an app starts once the root
lists it and every listed app of a lower sync wave is Healthy, is created Progressing and turns
Healthy `app_seconds[name]` later. Times are computed from those moments, not from the ticks,
so a chain of waves takes the sum of its apps' times (benchmarks/bench_first_deploy.py).
"""

from __future__ import annotations

import copy
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.fakes.kube_kmock import FakeCluster
from zenml_gcp_gitops.config import DeploymentConfig

_NIP = re.compile(r"\.(\d+\.\d+\.\d+\.\d+)\.nip\.io$")


def status_for(app: dict[str, Any], sync: str, health: str, **extra: Any) -> dict[str, Any]:
    """An Application's status as Argo CD writes it, its verdict about `app`'s current spec."""
    spec = app["spec"]
    return {
        "sync": {
            "status": sync,
            "comparedTo": {
                "source": copy.deepcopy(spec["source"]),
                "destination": spec["destination"],
            },
        },
        "health": {"status": health},
        **extra,
    }


class ArgoSim:
    def __init__(
        self,
        cluster: FakeCluster,
        cfg: DeploymentConfig,
        degrade: str | None = None,
        hold: str | None = None,
        on_tick: Callable[[ArgoSim], None] | None = None,
        app_seconds: dict[str, float] | None = None,
        install_seconds: float = 0.0,
    ) -> None:
        self.c, self.cfg, self.on_tick = cluster, cfg, on_tick
        self.degrade, self.hold = degrade, hold
        self.app_seconds, self.install_seconds = app_seconds, install_seconds
        self.ready_at: float | None = None  # timed: when the Argo CD install is done
        self.listed_at: dict[str, float] = {}  # timed: when the root first listed each app
        self.started: dict[str, float] = {}  # timed: when each app's sync began
        self._put: dict[str, Any] = {}  # timed: what this sim last wrote per app
        self.ns = cfg.names.namespaces["argocd"]
        self.listed: list[str] = []  # the children the root lists, at the last tick
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="argo-sim", daemon=True)

    def __enter__(self) -> ArgoSim:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        if self.errors:
            raise self.errors[0]

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.tick()
            except Exception as e:  # noqa: BLE001 - raised in the test thread at exit
                self.errors.append(e)
                return

    def healthy(self, name: str) -> bool:
        app = self.c.get("Application", name, self.ns)
        return ((app or {}).get("status") or {}).get("health", {}).get("status") == "Healthy"

    def tick(self) -> None:
        root = self.c.get("Application", self.cfg.names.argocd_root_app, self.ns)
        children = (
            ((root or {}).get("spec", {}).get("source", {}).get("helm") or {}).get("valuesObject")
            or {}
        ).get("resources") or []
        self.listed = [str(a["metadata"]["name"]) for a in children]
        if self.app_seconds is not None:
            self._timed(children)
        else:
            for child in children:
                self._show(child, "Healthy")
        if self.on_tick is not None:
            self.on_tick(self)

    def _show(self, child: dict[str, Any], health: str) -> None:
        name = child["metadata"]["name"]
        if self.degrade and name.endswith(self.degrade):
            health = "Degraded"
        elif self.hold and name.endswith(self.hold):
            health = "Progressing"
        want = status_for(child, "Synced", health)
        if self.app_seconds is not None:
            # timed: only Argo CD writes its Applications, so what this sim wrote is what is live
            if self._put.get(name) != (child["spec"], want):
                obj = copy.deepcopy(child)
                obj["status"] = want
                self.c.put(obj)
                self._put[name] = copy.deepcopy((child["spec"], want))
        else:
            live = self.c.get("Application", name, self.ns)
            if live is None or live.get("spec") != child["spec"] or live.get("status") != want:
                obj = copy.deepcopy(child)
                obj["status"] = want
                self.c.put(obj)
        values = (child["spec"]["source"].get("helm") or {}).get("valuesObject") or {}
        objects = values.get("resources")  # a manifests app's objects (the raw chart's)
        for obj in objects if isinstance(objects, list) else []:
            if obj.get("kind") == "Gateway":
                self._gateway(obj)

    def _timed(self, children: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        if self.ready_at is None:
            if self.c.get("Deployment", "argocd-server", self.ns) is None:
                return
            self.ready_at = now + self.install_seconds
        for child in children:
            self.listed_at.setdefault(child["metadata"]["name"], now)
        seconds = self.app_seconds or {}
        done = {n: t + seconds.get(n, 0.0) for n, t in self.started.items()}
        for child in sorted(children, key=_wave):
            name = child["metadata"]["name"]
            if name not in self.started:
                # the sync waves gate: every listed app of a lower wave must be Healthy
                lower = [_name(c) for c in children if _wave(c) < _wave(child)]
                if any(n not in done for n in lower):
                    continue
                start = max([self.ready_at, self.listed_at[name], *(done[n] for n in lower)])
                self.started[name] = start
                done[name] = start + seconds.get(name, 0.0)
            if now >= self.started[name]:
                self._show(child, "Healthy" if now >= done[name] else "Progressing")

    def _gateway(self, gw: dict[str, Any]) -> None:
        md = gw["metadata"]
        if self.c.get("Gateway", md["name"], md["namespace"]) is not None:
            return
        hosts = [str(x.get("hostname", "")) for x in gw["spec"].get("listeners", [])]
        ips = [m.group(1) for h in hosts if (m := _NIP.search(h))]
        obj = copy.deepcopy(gw)
        if ips:
            obj["status"] = {"addresses": [{"type": "IPAddress", "value": ips[0]}]}
        self.c.put(obj)


def _name(app: dict[str, Any]) -> str:
    return str(app["metadata"]["name"])


def _wave(app: dict[str, Any]) -> int:
    ann = app["metadata"].get("annotations") or {}
    return int(ann.get("argocd.argoproj.io/sync-wave", 0))
