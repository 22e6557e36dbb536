"""The container images the stack runs, for the Binary Authorization allowlist.

`CHART_IMAGES` is what `helm template` of the pinned charts, with the values our Applications
carry, puts in pod specs (tests/integration/test_checkov.py re-derives it from the real
charts and fails when it drifts, e.g. after a version bump). Argo CD is installed from its
release manifest, not a chart, so its images are listed by repository.
"""

from __future__ import annotations

from typing import Any

from ..config import DeploymentConfig

CHART_IMAGES: tuple[str, ...] = (
    "burakince/mlflow:3.15.1",
    "ghcr.io/external-secrets/external-secrets:v2.5.0",
    "quay.io/jetstack/cert-manager-cainjector:v1.19.1",
    "quay.io/jetstack/cert-manager-controller:v1.19.1",
    "quay.io/jetstack/cert-manager-startupapicheck:v1.19.1",
    "quay.io/jetstack/cert-manager-webhook:v1.19.1",
    "registry.k8s.io/ingress-nginx/controller:v1.13.3",
    "registry.k8s.io/ingress-nginx/kube-webhook-certgen:v1.6.3",
    "zenmldocker/zenml-server:0.98.0",
)
ARGOCD_REPOSITORIES: tuple[str, ...] = (
    "quay.io/argoproj/argocd",
    "ghcr.io/dexidp/dex",
    "public.ecr.aws/docker/library/redis",
)
_WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}


def images_in(objects: list[dict[str, Any]]) -> set[str]:
    """Every `image` of every container in the pod specs of `objects`, without digests."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "image" and isinstance(value, str):
                    found.add(value.split("@", 1)[0])
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for obj in objects:
        if obj.get("kind") in _WORKLOAD_KINDS:
            walk(obj.get("spec"))
    return found


def qualified(image: str) -> str:
    """`burakince/mlflow:1` -> `docker.io/burakince/mlflow:1` (Docker Hub is implicit)."""
    first = image.split("/", 1)[0]
    if "/" not in image:
        return f"docker.io/library/{image}"
    if "." in first or ":" in first or first == "localhost":
        return image
    return f"docker.io/{image}"


def admission_patterns(cfg: DeploymentConfig) -> list[str]:
    """Binary Authorization name patterns: our registry, the pinned upstream images (any
    digest of the pinned tag), Argo CD's repositories at any tag."""
    own = f"{cfg.names.registry_uri}/**"
    pinned = [f"{qualified(i)}*" for i in CHART_IMAGES]
    argocd = [f"{r}:*" for r in ARGOCD_REPOSITORIES]
    return [own, *sorted(pinned), *argocd]
