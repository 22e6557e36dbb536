"""What Argo CD would deploy: every Application of a config variant, rendered with `helm
template` on the real upstream chart and exactly the values the Application carries.

Reusable outside pytest (policy scans, cost estimates): `render_variant(name)` returns one
`ChartRender` per Application; `variant_objects(name)` flattens them into every Kubernetes object
the stack would create. Charts come from `../shared/charts` (read-only test data), the `helm`
binary from $HELM_BIN ($ZENML_GCP_GITOPS_HELM), next to the running interpreter (where `.ci/run` installs it) or PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared"
CHARTS = SHARED / "charts"
SCHEMAS = SHARED / "schemas"

# The Kubernetes version Argo CD passes as --kube-version (GKE regular channel) and the one the
# core schemas are checked against.
KUBE_VERSION = "1.33.0"

# The config variants every chart test covers (flag overrides on top of project and region).
# The zenml chart is pinned to the one chart version at hand; by default it follows the
# installed ZenML.
_BASE = {"project": "acme-ml-prod", "region": "europe-west4", "versions": {"zenml_chart": "0.98.0"}}
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "nginx": {"ingress": "nginx"},
    "domain": {"domain": "ml.example.com", "acme_email": "mlops@example.com"},
    "vertex-sa": {"orchestrator": "vertex", "connector_auth": "service-account"},
}

# Kinds without a namespace (what the charts and our objects create).
CLUSTER_SCOPED = {
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "ClusterIssuer",
    "ClusterSecretStore",
    "IngressClass",
    "PriorityClass",
}


class ChartsUnavailable(RuntimeError):
    """../shared/charts or a helm binary is missing: the caller decides (skip or fail)."""


def helm_binary() -> str | None:
    """The one place tests find helm: $HELM_BIN (or $ZENML_GCP_GITOPS_HELM), next to the
    running interpreter, or PATH."""
    explicit = os.environ.get("HELM_BIN") or os.environ.get("ZENML_GCP_GITOPS_HELM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    beside = Path(sys.executable).parent / "helm"
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("helm")


def missing() -> str | None:
    """Why charts cannot be rendered here, or None."""
    if not CHARTS.is_dir():
        return f"the upstream charts ({CHARTS})"
    if helm_binary() is None:
        return "a helm binary ($HELM_BIN, <venv>/bin/helm or PATH; .ci/run installs it)"
    return None


def chart_dir(chart: str, version: str) -> Path:
    for name in (f"{chart}-{version}", f"{chart}-{version}-assembled"):
        if (CHARTS / name / "Chart.yaml").is_file():
            return CHARTS / name
    raise ChartsUnavailable(f"no chart {chart} {version} under {CHARTS}")


def is_hook(obj: dict[str, Any]) -> bool:
    """Helm hooks become Argo CD sync hooks: run around a sync, never diffed for sync status."""
    annotations = obj.get("metadata", {}).get("annotations") or {}
    return "helm.sh/hook" in annotations or "argocd.argoproj.io/hook" in annotations


def namespace_of(obj: dict[str, Any], default: str) -> str | None:
    """Where Argo CD puts the object: its own namespace, else the Application's destination."""
    if obj.get("kind") in CLUSTER_SCOPED:
        return None
    return obj.get("metadata", {}).get("namespace") or default


@dataclass
class ChartRender:
    """One Application and what `helm template` makes of it."""

    variant: str
    app_name: str
    app_key: str  # components.yaml key, or "root"
    chart: str
    version: str
    chart_path: Path
    release: str
    namespace: str
    values: dict[str, Any]
    application: dict[str, Any]
    objects: list[dict[str, Any]] = field(default_factory=list)

    def template(self, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Render again, with other values (the same chart, release and namespace)."""
        return helm_template(
            self.chart_path, self.release, self.namespace, self.values if values is None else values
        )


def helm_template(
    chart: Path, release: str, namespace: str, values: dict[str, Any]
) -> list[dict[str, Any]]:
    """`helm template` as Argo CD runs it (no cluster: `lookup` finds nothing)."""
    helm = helm_binary()
    if helm is None:
        raise ChartsUnavailable("no helm binary")
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="zgg-values-") as f:
        json.dump(values, f)
        f.flush()
        proc = subprocess.run(
            [helm, "template", release, str(chart), "--namespace", namespace,
             "--kube-version", KUBE_VERSION, "--include-crds", "--values", f.name],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    if proc.returncode != 0:
        raise HelmError(proc.stderr.strip())
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


class HelmError(RuntimeError):
    """`helm template` refused the values."""


@cache
def variant(name: str) -> tuple[Any, Any]:
    """(DeploymentConfig, Rendered) of a variant, with the offline plan's infra outputs."""
    from zenml_gcp_gitops.config import build_config
    from zenml_gcp_gitops.gitops.render import render
    from zenml_gcp_gitops.plan import offline_outputs

    cfg = build_config(None, {**_BASE, **VARIANTS[name]})
    return cfg, render(cfg, offline_outputs(cfg))


def _helm_source(app: dict[str, Any]) -> dict[str, Any] | None:
    src = app["spec"].get("source", {})
    return src if "chart" in src else None


def applications(name: str) -> list[tuple[str, dict[str, Any]]]:
    """(key, Application) for the root app and every child app of a variant."""
    _, r = variant(name)
    return [("root", r.root), *((a.key, a.manifest) for a in r.apps)]


@cache
def _render_variant(name: str) -> tuple[ChartRender, ...]:
    reason = missing()
    if reason:
        raise ChartsUnavailable(reason)
    out = []
    for key, app in applications(name):
        src = _helm_source(app)
        if src is None:  # a folder of a Git repo: plain objects, no chart
            continue
        values = src.get("helm", {}).get("valuesObject", {})
        release = src.get("helm", {}).get("releaseName") or app["metadata"]["name"]
        namespace = app["spec"]["destination"]["namespace"]
        path = chart_dir(src["chart"], str(src["targetRevision"]))
        cr = ChartRender(
            variant=name,
            app_name=app["metadata"]["name"],
            app_key=key,
            chart=src["chart"],
            version=str(src["targetRevision"]),
            chart_path=path,
            release=release,
            namespace=namespace,
            values=values,
            application=app,
        )
        cr.objects = cr.template()
        out.append(cr)
    return tuple(out)


def render_variant(name: str) -> list[ChartRender]:
    """Every Helm-sourced Application of a variant, rendered (cached per process)."""
    return list(_render_variant(name))


def variant_objects(name: str) -> list[tuple[dict[str, Any], str | None]]:
    """(object, namespace) for everything the stack creates in the cluster in this variant:
    the charts' output (Applications' manifests of the root chart included) and the plain
    objects that ride in a Git folder when a GitOps repo is used (none in these variants)."""
    _, r = variant(name)
    found: list[tuple[dict[str, Any], str | None]] = []
    for cr in render_variant(name):
        found += [(o, namespace_of(o, cr.namespace)) for o in cr.objects]
    for obj in r.bootstrap:
        found.append((obj, namespace_of(obj, "argocd")))
    return found


# ---------------------------------------------------------------- schema validation

# Custom resources -> their JSON schema under ../shared/schemas/crds (nested objects there
# forbid unknown fields, like kubernetes-validate's strict mode for core kinds).
CRD_SCHEMAS = {
    ("argoproj.io", "Application"): "argoproj.io/application_v1alpha1.json",
    ("argoproj.io", "AppProject"): "argoproj.io/appproject_v1alpha1.json",
    ("cert-manager.io", "ClusterIssuer"): "cert-manager.io/clusterissuer_v1.json",
    ("cert-manager.io", "Certificate"): "cert-manager.io/certificate_v1.json",
    ("external-secrets.io", "ClusterSecretStore"): "external-secrets.io/clustersecretstore_v1.json",
    ("external-secrets.io", "SecretStore"): "external-secrets.io/secretstore_v1.json",
    ("external-secrets.io", "ExternalSecret"): "external-secrets.io/externalsecret_v1.json",
    ("gateway.networking.k8s.io", "Gateway"): "gateway.networking.k8s.io/gateway_v1.json",
    ("gateway.networking.k8s.io", "HTTPRoute"): "gateway.networking.k8s.io/httproute_v1.json",
}
# Custom resources with no schema at hand, and where their shape is checked instead.
NO_SCHEMA = {
    ("networking.gke.io", "HealthCheckPolicy"): "tests/unit/test_gitops_render.py (by hand)",
}


def api_group(obj: dict[str, Any]) -> str:
    api = str(obj.get("apiVersion", ""))
    return api.split("/")[0] if "/" in api else ""


@cache
def _crd_schema(rel: str) -> dict[str, Any]:
    return dict(json.loads((SCHEMAS / "crds" / rel).read_text()))


def is_core(obj: dict[str, Any]) -> bool:
    group = api_group(obj)
    if group in {"", "apps", "batch", "policy", "autoscaling"}:
        return True
    return group.endswith(".k8s.io") and not group.startswith("gateway.")


def validate(obj: dict[str, Any]) -> None:
    """Raise if the object breaks its schema: kubernetes-validate --strict for core kinds,
    the CRD schema for custom resources; a kind with neither fails."""
    key = (api_group(obj), str(obj.get("kind")))
    if key in CRD_SCHEMAS:
        import jsonschema

        jsonschema.Draft7Validator(_crd_schema(CRD_SCHEMAS[key])).validate(obj)
    elif key in NO_SCHEMA:
        return
    elif is_core(obj):
        import kubernetes_validate

        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    else:
        raise ValueError(f"no schema for {key[1]} ({key[0]})")
