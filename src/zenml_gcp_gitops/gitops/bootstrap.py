"""Install Argo CD, configure it, hand it the app-of-apps; and the reverse (teardown).

Argo CD's own install manifest is downloaded at run time from the release, checked against
the sha256 pinned in `render.ARGOCD_INSTALL_SHA256`, cached, and applied server-side: its
CRDs are too large for client-side apply's last-applied annotation (Argo CD >= 3.3).
"""

from __future__ import annotations

import hashlib
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..errors import PhaseError
from ..files import atomic_write
from ..polling import poll_until
from .render import install_manifest

if TYPE_CHECKING:
    from ..config import DeploymentConfig
    from ..phases.base import Reporter
    from .health import WaitOptions
    from .kube import Kube
    from .render import Rendered

APP_API = "argoproj.io/v1alpha1"
SETTINGS_MANAGER = "zenml-gcp-gitops-settings"
ROOT_FINALIZER = "resources-finalizer.argocd.argoproj.io"
_ARGOCD_CRDS = (
    "applications.argoproj.io",
    "applicationsets.argoproj.io",
    "appprojects.argoproj.io",
)


def _cache_dir(cache_dir: Path | str | None) -> Path:
    from ..config import user_data_dir

    return Path(cache_dir) if cache_dir else user_data_dir() / "cache" / "argocd"


def fetch_install_manifest(
    version: str,
    cache_dir: Path | str | None = None,
    source: tuple[str, str] | None = None,
    timeout: float = 60,
) -> list[dict[str, Any]]:
    """The upstream install manifest's objects, verified against the pinned checksum.

    `source` = (url, sha256) replaces the pinned pair (tests serve a small fake manifest).
    """
    url, sha = source or install_manifest(version)
    path = _cache_dir(cache_dir) / f"install-{version}-{sha[:16]}.yaml"
    data: bytes | None = None
    if path.exists():
        cached = path.read_bytes()
        if hashlib.sha256(cached).hexdigest() == sha:
            data = cached
    if data is None:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                data = resp.read()
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            raise PhaseError(
                f"could not download the Argo CD {version} install manifest from {url}: {e}",
                "check your internet connection and re-run; the download is cached once it succeeds",
            ) from None
        got = hashlib.sha256(data).hexdigest()
        if got != sha:
            raise PhaseError(
                f"the Argo CD {version} install manifest from {url} has sha256 {got}, expected {sha}",
                "the download was altered or truncated; re-run, and report it if it persists",
            )
        atomic_write(path, data)
    return [d for d in yaml.safe_load_all(data) if d]


def _note(reporter: Reporter | None, line: str) -> None:
    if reporter is not None:
        reporter.log(line)


def install_argocd(
    kube: Kube,
    cfg: DeploymentConfig,
    rendered: Rendered,
    reporter: Reporter | None = None,
    cache_dir: Path | str | None = None,
    source: tuple[str, str] | None = None,
) -> dict[str, int]:
    """Apply the install manifest and our argocd-cm settings. Returns counts per outcome."""
    ns = cfg.names.namespaces["argocd"]
    docs = fetch_install_manifest(rendered.argocd_version, cache_dir, source)
    counts: dict[str, int] = {}

    def apply(obj: dict[str, Any]) -> None:
        outcome = kube.apply(obj, namespace=ns)
        counts[outcome] = counts.get(outcome, 0) + 1

    apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    # CRDs first: the rest of the manifest (and our Applications) need their kinds.
    crds = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
    for obj in crds + [d for d in docs if d.get("kind") != "CustomResourceDefinition"]:
        apply(obj)
    if crds:
        kube.dyn.resources.invalidate_cache()
    # our argocd-cm keys under their own manager: re-applying the upstream (data-less)
    # argocd-cm with the install manager must never drop the health check
    outcome = kube.apply(rendered.argocd_cm, namespace=ns, field_manager=SETTINGS_MANAGER)
    counts[outcome] = counts.get(outcome, 0) + 1
    _note(reporter, f"Argo CD {rendered.argocd_version}: {_counts(counts)}")
    return counts


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing to do"


def apply_stack(
    kube: Kube,
    cfg: DeploymentConfig,
    rendered: Rendered,
    reporter: Reporter | None = None,
    opts: WaitOptions | None = None,
    sleep: Any = time.sleep,
    clock: Any = time.monotonic,
) -> dict[str, int]:
    """Repositories, the AppProject and the root Application; Argo CD creates the rest.

    With a private GitOps repo, the objects that fetch its credentials go first, each once
    its kind exists (the External Secrets CRDs arrive with its Application)."""
    from .health import WaitOptions

    opts = opts or WaitOptions()
    ns = cfg.names.namespaces["argocd"]
    counts: dict[str, int] = {}

    def apply(obj: dict[str, Any]) -> None:
        outcome = kube.apply(obj, namespace=ns)
        counts[outcome] = counts.get(outcome, 0) + 1

    for obj in [*rendered.bootstrap, rendered.project]:
        apply(obj)
    for obj in rendered.before_root:
        kube.wait_for_kind(
            obj["apiVersion"], obj["kind"], opts.wave_timeout, opts.poll, sleep, clock
        )
        apply(obj)
    apply(rendered.root)
    pruned = prune_bootstrap(kube, cfg, rendered)
    if pruned:
        counts["pruned"] = len(pruned)
    _note(reporter, f"app-of-apps {cfg.names.argocd_root_app}: {_counts(counts)}")
    return counts


def root_app_names(kube: Kube, cfg: DeploymentConfig) -> set[str]:
    """The child Applications the live app-of-apps lists (none when it does not exist)."""
    from .health import APP_API

    root = kube.get(
        APP_API, "Application", cfg.names.argocd_root_app, cfg.names.namespaces["argocd"]
    )
    source = ((root or {}).get("spec") or {}).get("source") or {}
    listed = ((source.get("helm") or {}).get("valuesObject") or {}).get("resources") or []
    return {str((a.get("metadata") or {}).get("name")) for a in listed if isinstance(a, dict)}


MANAGED_SELECTOR = "app.kubernetes.io/managed-by=zenml-gcp-gitops"


def prune_bootstrap(kube: Kube, cfg: DeploymentConfig, rendered: Rendered) -> list[str]:
    """Delete the objects the bootstrap applied earlier (found by our labels) that it no
    longer renders, e.g. a private repo's credentials after the repo turned public. Only the
    kinds the bootstrap itself applies in the Argo CD namespace are considered; Argo CD
    prunes everything else it owns."""
    ns = cfg.names.namespaces["argocd"]
    ours = set(cfg.names.argocd_repo_secrets.values())
    wanted = {
        (o["kind"], o["metadata"]["name"]) for o in [*rendered.bootstrap, *rendered.before_root]
    }
    gone: list[str] = []
    for api_version, kind, extra in (
        ("v1", "Secret", ",argocd.argoproj.io/secret-type=repository"),
        ("external-secrets.io/v1", "ExternalSecret", ""),
    ):
        for obj in kube.list_objects(
            api_version, kind, namespace=ns, label_selector=MANAGED_SELECTOR + extra
        ):
            name = obj.get("metadata", {}).get("name", "")
            if name not in ours or (kind, name) in wanted:
                continue
            if kind == "Secret" and ("ExternalSecret", name) in wanted:
                continue  # ESO owns this Secret now (its ExternalSecret is rendered)
            if kube.delete(api_version, kind, name, ns):
                gone.append(f"{kind}/{name}")
    return gone


def bootstrap(
    kube: Kube,
    cfg: DeploymentConfig,
    rendered: Rendered,
    reporter: Reporter | None = None,
    cache_dir: Path | str | None = None,
    source: tuple[str, str] | None = None,
    opts: WaitOptions | None = None,
    sleep: Any = time.sleep,
) -> dict[str, int]:
    if reporter is not None:
        reporter.step(f"Installing Argo CD {rendered.argocd_version}")
    counts = install_argocd(kube, cfg, rendered, reporter, cache_dir, source)
    if reporter is not None:
        reporter.step("Handing the stack to Argo CD")
    for k, n in apply_stack(kube, cfg, rendered, reporter, opts, sleep=sleep).items():
        counts[k] = counts.get(k, 0) + n
    return counts


# ---------------------------------------------------------------- teardown


def _wait_gone(
    what: str,
    remaining: Any,
    timeout: float,
    poll: float,
    reporter: Reporter | None,
    sleep: Any = time.sleep,
    clock: Any = time.monotonic,
    hint: Any = None,
) -> None:
    """Poll `remaining()` (a list of "kind ns/name" strings) until it is empty."""
    last: list[str] = []
    left: list[str] = []

    def gone() -> bool | None:
        nonlocal last, left
        left = remaining()
        if not left:
            return True
        if left != last:
            _note(reporter, f"waiting for {what}: {', '.join(left)}")
            last = left
        return None

    poll_until(
        gone,
        timeout=timeout,
        interval=poll,
        sleep=sleep,
        clock=clock,
        on_timeout=lambda: PhaseError(
            f"timed out after {int(timeout)}s waiting for {what} to be deleted: {', '.join(left)}",
            (hint() if hint else None)
            or "their controllers may be gone or stuck on a finalizer; check "
            "`kubectl describe` on them and their Events, delete them (in the GCP console, the "
            "forwarding rules and disks they made), then re-run destroy",
        ),
    )


def _leftovers(kube: Kube, cfg: DeploymentConfig) -> list[str]:
    """LoadBalancer Services, Gateways and PVCs in the stack's namespaces: the things that
    hold GCP load balancers, IPs and disks (and block VPC deletion) while they exist."""
    ours = set(cfg.names.namespaces.values())
    left: list[str] = []
    for svc in kube.list_objects("v1", "Service"):
        meta = svc.get("metadata", {})
        if meta.get("namespace") in ours and svc.get("spec", {}).get("type") == "LoadBalancer":
            left.append(f"Service {meta.get('namespace')}/{meta.get('name')}")
    for gw in kube.list_objects("gateway.networking.k8s.io/v1", "Gateway"):
        meta = gw.get("metadata", {})
        if meta.get("namespace") in ours:
            left.append(f"Gateway {meta.get('namespace')}/{meta.get('name')}")
    for pvc in kube.list_objects("v1", "PersistentVolumeClaim"):
        meta = pvc.get("metadata", {})
        if meta.get("namespace") in ours:
            left.append(f"PersistentVolumeClaim {meta.get('namespace')}/{meta.get('name')}")
    return sorted(left)


def teardown(
    kube: Kube,
    cfg: DeploymentConfig,
    reporter: Reporter | None = None,
    opts: WaitOptions | None = None,
    sleep: Any = time.sleep,
    clock: Any = time.monotonic,
) -> list[str]:
    """Delete the apps with cascade, wait for their cloud resources to go, uninstall Argo CD.

    Returns the steps taken, in order (the tests assert the order).
    """
    from .health import WaitOptions

    opts = opts or WaitOptions()
    n = cfg.names
    ns = n.namespaces["argocd"]
    steps: list[str] = []
    if reporter is not None:
        reporter.step("Removing the Argo CD apps and what they made")

    root = kube.get(APP_API, "Application", n.argocd_root_app, ns)
    if root is not None:
        # The finalizer makes Argo CD delete every child (and, through theirs, every resource)
        # before the root object goes; foreground propagation keeps the order.
        finalizers = root.get("metadata", {}).get("finalizers") or []
        if ROOT_FINALIZER not in finalizers:
            kube.merge_patch(
                APP_API,
                "Application",
                n.argocd_root_app,
                {"metadata": {"finalizers": [*finalizers, ROOT_FINALIZER]}},
                ns,
            )
        kube.delete(APP_API, "Application", n.argocd_root_app, ns, propagation="Foreground")
        steps.append("delete-root")

        mine = f"zenml-gcp-gitops/deployment={n.prefix}"

        def apps_left() -> list[str]:
            apps = kube.list_objects(APP_API, "Application", namespace=ns, label_selector=mine)
            return sorted(f"Application {a['metadata']['name']}" for a in apps)

        def controller_hint() -> str | None:
            sts = kube.get("apps/v1", "StatefulSet", "argocd-application-controller", ns)
            if sts and ((sts.get("status") or {}).get("readyReplicas") or 0) > 0:
                return None
            return (
                "Argo CD's application controller is not running, so nothing finalizes the apps: "
                "run `zenml-gcp-gitops deploy --stop-after gitops` to restore it, then destroy again"
            )

        _wait_gone(
            "the Argo CD applications",
            apps_left,
            opts.teardown_timeout,
            opts.poll,
            reporter,
            sleep,
            clock,
            hint=controller_hint,
        )
        steps.append("apps-gone")

    _wait_gone(
        "load balancers, gateways and volumes",
        lambda: _leftovers(kube, cfg),
        opts.teardown_timeout,
        opts.poll,
        reporter,
        sleep,
        clock,
    )
    steps.append("cloud-resources-gone")

    # Uninstall Argo CD: the project, its namespace, and the cluster-scoped install objects.
    kube.delete(APP_API, "AppProject", n.argocd_project, ns)
    for kind in ("ClusterRoleBinding", "ClusterRole"):
        for obj in kube.list_objects(
            "rbac.authorization.k8s.io/v1", kind, label_selector="app.kubernetes.io/part-of=argocd"
        ):
            kube.delete("rbac.authorization.k8s.io/v1", kind, obj["metadata"]["name"])
    kube.delete("v1", "Namespace", ns)
    for crd in _ARGOCD_CRDS:
        kube.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd)
    steps.append("argocd-uninstalled")
    _note(reporter, "Argo CD and the stack's workloads are removed")
    return steps
