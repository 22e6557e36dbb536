"""What GKE Autopilot bills for: the pods' requests, from the charts and the rendered objects.

Autopilot charges the vCPU, memory and ephemeral storage that pods *request*. The charts'
workloads and their requests (as `helm template` renders them with this package's values) are
kept per chart version in `pod_requests.json`, because the product renders no charts itself
(Argo CD does); replica counts and `resources` that our values set are read from the rendered
Applications, and pods among the plain objects are read directly. Autopilot's rules (defaults
for containers without requests, pod minimums, the memory-per-vCPU range) are applied as
documented there. One-off hook Jobs (migrations, webhook certificates) are not billed monthly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..gitops.render import Rendered

POD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")

# Where each chart takes a workload's replica count and resources in its values, by the
# workload's name suffix after the release name ("" for the main workload).
VALUE_PATHS: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "external-secrets": {
        "": (("replicaCount",), ("resources",)),
        "-webhook": (("webhook", "replicaCount"), ("webhook", "resources")),
        "-cert-controller": (("certController", "replicaCount"), ("certController", "resources")),
    },
    "cert-manager": {
        "": (("replicaCount",), ("resources",)),
        "-webhook": (("webhook", "replicaCount"), ("webhook", "resources")),
        "-cainjector": (("cainjector", "replicaCount"), ("cainjector", "resources")),
    },
    "ingress-nginx": {
        "-controller": (("controller", "replicaCount"), ("controller", "resources")),
    },
    "zenml": {"": (("zenml", "replicaCount"), ("resources",))},
    "mlflow": {"": (("replicaCount",), ("resources",))},
}
# The ZenML chart reads `server:` as well as the older `zenml:` section.
ALT_REPLICA_PATHS = {"zenml": (("server", "replicaCount"),)}


@cache
def table() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("pod_requests.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


_QTY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_DECIMAL = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "m": 1e-3}


def cpu_cores(value: str | int | float) -> float:
    text = str(value)
    if text.endswith("m"):
        return float(text[:-1]) / 1000
    return float(text)


def gib(value: str | int | float) -> float:
    m = _QTY.match(str(value))
    if not m:
        raise ValueError(f"'{value}' is not a Kubernetes quantity")
    number, suffix = float(m.group(1)), m.group(2)
    factor = _BINARY.get(suffix) or _DECIMAL.get(suffix)
    if factor is None:
        raise ValueError(f"'{value}' has an unknown unit")
    return number * factor / 2**30


@dataclass
class PodRequest:
    """One workload's billed requests per replica (after Autopilot's rules)."""

    app: str
    workload: str
    replicas: int
    cpu: float
    memory_gib: float
    ephemeral_gib: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "workload": self.workload,
            "replicas": self.replicas,
            "cpu": round(self.cpu, 4),
            "memory_gib": round(self.memory_gib, 4),
            "ephemeral_gib": round(self.ephemeral_gib, 4),
        }


def _container(
    requests: dict[str, Any] | None, rules: dict[str, Any]
) -> tuple[float, float, float]:
    d = rules["default_container"]
    req = requests or {}
    if not req:
        return d["cpu"], d["memory_gib"], d["ephemeral_gib"]
    return (
        cpu_cores(req["cpu"]) if "cpu" in req else d["cpu"],
        gib(req["memory"]) if "memory" in req else d["memory_gib"],
        gib(req["ephemeral-storage"]) if "ephemeral-storage" in req else d["ephemeral_gib"],
    )


def billed_pod(
    containers: list[dict[str, Any] | None],
    init_containers: list[dict[str, Any] | None],
    rules: dict[str, Any] | None = None,
) -> tuple[float, float, float]:
    """(vCPU, GiB memory, GiB ephemeral) Autopilot bills for one pod, from each container's
    `requests` (None or {} when unset): the larger of the app containers' sum and the
    largest init container, raised to the pod minimum and into the memory-per-vCPU range."""
    r = rules or table()["autopilot"]
    apps = [_container(c, r) for c in containers]
    inits = [_container(c, r) for c in init_containers]
    cpu = max([sum(c[0] for c in apps), *(c[0] for c in inits)])
    mem = max([sum(c[1] for c in apps), *(c[1] for c in inits)])
    eph = max([sum(c[2] for c in apps), *(c[2] for c in inits)])
    low = r["pod_minimum"]
    cpu, mem, eph = (
        max(cpu, low["cpu"]),
        max(mem, low["memory_gib"]),
        max(eph, low["ephemeral_gib"]),
    )
    ratio = r["memory_per_cpu_gib"]
    if mem < cpu * ratio["min"]:
        mem = cpu * ratio["min"]
    if mem > cpu * ratio["max"]:
        cpu = mem / ratio["max"]
    return cpu, mem, eph


def _get(values: dict[str, Any], path: tuple[str, ...]) -> Any:
    cur: Any = values
    for part in path:
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def chart_workloads(
    chart: str, version: str, release: str, values: dict[str, Any]
) -> list[dict[str, Any]] | None:
    """The chart's long-running workloads, with replicas and resources our values set.

    None when the table has no entry for this chart version (the estimate says so)."""
    versions = table()["charts"].get(chart) or {}
    rows = versions.get(version)
    if rows is None:
        return None
    paths = VALUE_PATHS.get(chart, {})
    out = []
    for row in rows:
        if row["kind"] not in POD_KINDS:
            continue
        row = json.loads(json.dumps(row))  # a private copy
        suffix = row["name"][len(release) :] if row["name"].startswith(release) else None
        if suffix is not None and suffix in paths:
            replicas_path, resources_path = paths[suffix]
            replicas = _get(values, replicas_path)
            for alt in ALT_REPLICA_PATHS.get(chart, ()):
                if replicas is None:
                    replicas = _get(values, alt)
            if isinstance(replicas, int) and not isinstance(replicas, bool):
                row["replicas"] = replicas
            res = _get(values, resources_path)
            if isinstance(res, dict) and res.get("requests"):
                # the main container takes `resources`; Helm merges ours over the chart's
                ours = {k: str(v) for k, v in res["requests"].items()}
                row["containers"][0]["requests"] = {**row["containers"][0]["requests"], **ours}
        out.append(row)
    return out


def _object_pods(obj: dict[str, Any]) -> dict[str, Any] | None:
    if obj.get("kind") not in POD_KINDS:
        return None
    spec = obj.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}

    def reqs(cs: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        return [
            {"name": c.get("name"), "requests": (c.get("resources") or {}).get("requests") or {}}
            for c in cs or []
        ]

    return {
        "kind": obj["kind"],
        "name": (obj.get("metadata") or {}).get("name", "?"),
        "replicas": int(spec.get("replicas", 1)),
        "containers": reqs(pod.get("containers")),
        "init_containers": reqs(pod.get("initContainers")),
    }


def pod_requests(rendered: Rendered) -> tuple[list[PodRequest], list[str]]:
    """Every billed workload of the GitOps tree, and what could not be priced (and why)."""
    rules = table()["autopilot"]
    missing: list[str] = []
    rows: list[tuple[str, dict[str, Any]]] = []
    argocd = table()["argocd"].get(rendered.argocd_version)
    if argocd is None:
        missing.append(f"Argo CD {rendered.argocd_version}: no request table")
    else:
        rows += [("argocd", w) for w in argocd]
    for app in rendered.apps:
        source = app.manifest["spec"].get("source") or {}
        chart, version = source.get("chart"), str(source.get("targetRevision", ""))
        if app.objects:
            rows += [(app.key, w) for w in map(_object_pods, app.objects) if w is not None]
            continue
        if not chart:
            continue
        helm = source.get("helm") or {}
        release = str(helm.get("releaseName") or app.name)
        workloads = chart_workloads(chart, version, release, helm.get("valuesObject") or {})
        if workloads is None:
            missing.append(f"{app.key}: no request table for chart {chart} {version}")
            continue
        rows += [(app.key, w) for w in workloads]
    out = []
    for app_key, w in rows:
        cpu, mem, eph = billed_pod(
            [c.get("requests") for c in w["containers"]],
            [c.get("requests") for c in w.get("init_containers") or []],
            rules,
        )
        out.append(PodRequest(app_key, w["name"], int(w["replicas"]), cpu, mem, eph))
    return out, missing


def totals(pods: list[PodRequest]) -> tuple[float, float, float]:
    cpu = sum(p.cpu * p.replicas for p in pods)
    mem = sum(p.memory_gib * p.replicas for p in pods)
    eph = sum(p.ephemeral_gib * p.replicas for p in pods)
    return cpu, mem, eph
