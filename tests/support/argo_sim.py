"""Argo CD and GKE's Gateway controller as a deploy sees them, on kmock, in a thread.

While the app-of-apps exists, each child it lists is created or updated Synced and Healthy
(Degraded for the app named in `degrade`, Progressing for `hold`), the Gateway a manifests app carries is put in
the cluster with the address GKE would give it (the static IP in its listeners' nip.io
hosts), and `on_tick(sim)` lets a test act on what it sees (open a gate, send a signal).
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Callable
from typing import Any

from tests.fakes.kube_kmock import FakeCluster
from zenml_gcp_gitops.config import DeploymentConfig

_NIP = re.compile(r"\.(\d+\.\d+\.\d+\.\d+)\.nip\.io$")


def status_for(app: dict[str, Any], sync: str, health: str) -> dict[str, Any]:
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
    }


class ArgoSim:
    def __init__(
        self,
        cluster: FakeCluster,
        cfg: DeploymentConfig,
        degrade: str | None = None,
        hold: str | None = None,
        on_tick: Callable[[ArgoSim], None] | None = None,
    ) -> None:
        self.c, self.cfg, self.on_tick = cluster, cfg, on_tick
        self.degrade, self.hold = degrade, hold
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
        for child in children:
            name = child["metadata"]["name"]
            health = "Healthy"
            if self.degrade and name.endswith(self.degrade):
                health = "Degraded"
            elif self.hold and name.endswith(self.hold):
                health = "Progressing"
            want = status_for(child, "Synced", health)
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
        if self.on_tick is not None:
            self.on_tick(self)

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
