"""The shipped table of the charts' pod requests matches what the real charts render.

The estimate cannot run helm (the product renders no charts; Argo CD does), so
`estimate/pod_requests.json` keeps each chart version's workloads and requests. These tests
render the upstream charts in ../shared/charts with the values this package renders and
compare: a chart bump, or a values change that moves replicas or requests, fails here until
the table is updated.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support.helm import helm_template
from zenml_gcp_gitops.config import build_config
from zenml_gcp_gitops.estimate.pods import POD_KINDS, chart_workloads, table
from zenml_gcp_gitops.gitops.render import Rendered, render
from zenml_gcp_gitops.plan import offline_outputs

KINDS = (*POD_KINDS, "Job")


def _workloads(manifests: list[dict[str, Any]], kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    out = []
    for d in manifests:
        if d.get("kind") not in kinds:
            continue
        pod = d["spec"]["template"]["spec"]

        def reqs(cs: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
            return [
                {
                    "name": c["name"],
                    "requests": {
                        k: str(v)
                        for k, v in ((c.get("resources") or {}).get("requests") or {}).items()
                    },
                }
                for c in cs or []
            ]

        out.append(
            {
                "kind": d["kind"],
                "name": d["metadata"]["name"],
                "replicas": d["spec"].get("replicas", 1) if d["kind"] != "Job" else 1,
                "containers": reqs(pod.get("containers")),
                "init_containers": reqs(pod.get("initContainers")),
            }
        )
    return sorted(out, key=lambda w: (w["kind"], w["name"]))


def _helm_apps(rendered: Rendered) -> list[tuple[str, str, str, str, dict[str, Any]]]:
    out = []
    for app in rendered.apps:
        src = app.manifest["spec"]["source"]
        if app.objects or src.get("chart") in (None, "raw"):
            continue
        helm = src["helm"]
        out.append(
            (
                src["chart"],
                str(src["targetRevision"]),
                helm.get("releaseName") or app.name,
                app.manifest["spec"]["destination"]["namespace"],
                helm.get("valuesObject") or {},
            )
        )
    return out


def _rendered(**kw: Any) -> Rendered:
    cfg = build_config(None, {"project": "my-project-1", "region": "us-central1", **kw})
    return render(cfg, offline_outputs(cfg))


@pytest.mark.parametrize("ingress", ["gateway", "nginx"])
def test_table_matches_the_charts_rendered_with_our_values(ingress: str) -> None:
    for chart, version, release, ns, values in _helm_apps(_rendered(ingress=ingress)):
        rendered = _workloads(helm_template(chart, version, release, ns, values), KINDS)
        shipped = table()["charts"][chart][version]
        assert sorted(shipped, key=lambda w: (w["kind"], w["name"])) == rendered, (
            f"{chart} {version}: update src/zenml_gcp_gitops/estimate/pod_requests.json"
        )
        # and the estimator's view (table + our values) is what helm renders
        assert chart_workloads(chart, version, release, values) == _workloads(
            helm_template(chart, version, release, ns, values), POD_KINDS
        )


# Replica counts and requests our values may set (more replicas for availability, sized
# requests): the estimator must read them where each chart does.
OVERRIDES: dict[str, dict[str, Any]] = {
    "mlflow": {"replicaCount": 2, "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
    "zenml": {
        "zenml": {"replicaCount": 2},
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}},
    },
    "cert-manager": {
        "replicaCount": 2,
        "webhook": {"replicaCount": 3},
        "cainjector": {"resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}},
    },
    "external-secrets": {
        "replicaCount": 2,
        "webhook": {"replicaCount": 2},
        "certController": {"resources": {"requests": {"cpu": "20m"}}},
    },
    "ingress-nginx": {
        "controller": {"replicaCount": 2, "resources": {"requests": {"cpu": "200m"}}}
    },
}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        out[k] = _merge(out.get(k) or {}, v) if isinstance(v, dict) else v
    return out


def test_replicas_and_requests_from_values_are_read_where_the_charts_read_them() -> None:
    for chart, version, release, ns, values in _helm_apps(_rendered(ingress="nginx")):
        changed = _merge(values, OVERRIDES[chart])
        helm = _workloads(helm_template(chart, version, release, ns, changed), POD_KINDS)
        assert chart_workloads(chart, version, release, changed) == helm, chart
        assert helm != _workloads(helm_template(chart, version, release, ns, values), POD_KINDS)
