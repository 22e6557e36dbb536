"""Kubernetes access: an in-memory client for the GKE cluster and a small apply/get/delete API.

The client is built from the infra outputs (endpoint and CA) with a google-auth access token
that refreshes itself, so neither gcloud nor gke-gcloud-auth-plugin is needed and nothing is
written to ~/.kube unless the user asks for it (`--write-kubeconfig`).
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tenacity

from ..errors import ServiceUnavailable, UserError
from ..polling import poll_until

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from ..outputs import InfraOutputs

FIELD_MANAGER = "zenml-gcp-gitops"
_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


def _token_source() -> Callable[[], str]:
    """A callable returning a valid access token, refreshing it shortly before expiry."""
    import google.auth
    import google.auth.exceptions
    import google.auth.transport.requests

    try:
        creds, _ = google.auth.default(scopes=_SCOPES)
    except google.auth.exceptions.DefaultCredentialsError:
        raise UserError(
            "no Google credentials found to reach the GKE cluster",
            "run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS",
        ) from None
    request = google.auth.transport.requests.Request()

    def token() -> str:
        expiry = getattr(creds, "expiry", None)  # naive UTC, as google-auth keeps it
        soon = (
            expiry is not None
            and (expiry.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds() < 300
        )
        if not creds.valid or soon:
            creds.refresh(request)  # type: ignore[no-untyped-call]
        return str(creds.token)

    return token


def _ca_file(infra: InfraOutputs) -> Path:
    """The cluster CA on disk (the client wants a path). Public data, not a secret."""
    from ..config import user_data_dir

    path = user_data_dir() / "kube" / f"{infra.name}-{infra.cluster_name}-ca.crt"
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = base64.b64decode(infra.cluster_ca_certificate)
    if not path.exists() or path.read_bytes() != pem:
        path.write_bytes(pem)
    return path


def api_client_for(infra: InfraOutputs) -> ApiClient:
    from kubernetes import client

    token = _token_source()
    conf = client.Configuration()
    conf.host = f"https://{infra.cluster_endpoint}"
    conf.ssl_ca_cert = str(_ca_file(infra))
    conf.api_key_prefix = {"authorization": "Bearer"}
    conf.api_key = {"authorization": token()}

    def refresh(c: Any) -> None:
        c.api_key["authorization"] = token()

    conf.refresh_api_key_hook = refresh
    return client.ApiClient(conf)


def write_kubeconfig(infra: InfraOutputs, context: str) -> Path:
    """Merge a context for this cluster into the user's kubeconfig (opt-in only).

    The written entry authenticates with gke-gcloud-auth-plugin, the standard for kubectl;
    this tool itself never reads it.
    """
    import yaml

    path = Path(
        os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or Path.home() / ".kube" / "config"
    )
    data: dict[str, Any] = {}
    if path.exists():
        data = yaml.safe_load(path.read_text()) or {}
    data.setdefault("apiVersion", "v1")
    data.setdefault("kind", "Config")

    def upsert(key: str, entry: dict[str, Any]) -> None:
        items = [e for e in data.get(key) or [] if e.get("name") != entry["name"]]
        data[key] = [*items, entry]

    upsert(
        "clusters",
        {
            "name": context,
            "cluster": {
                "server": f"https://{infra.cluster_endpoint}",
                "certificate-authority-data": infra.cluster_ca_certificate,
            },
        },
    )
    upsert(
        "users",
        {
            "name": context,
            "user": {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1beta1",
                    "command": "gke-gcloud-auth-plugin",
                    "provideClusterInfo": True,
                    "interactiveMode": "IfAvailable",
                }
            },
        },
    )
    upsert("contexts", {"name": context, "context": {"cluster": context, "user": context}})
    data["current-context"] = data.get("current-context") or context
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    path.chmod(0o600)
    return path


def connect(infra: InfraOutputs, write_kubeconfig_file: bool = False) -> Kube:
    if write_kubeconfig_file:
        write_kubeconfig(
            infra, f"gke_{infra.project}_{infra.cluster_location}_{infra.cluster_name}"
        )
    return Kube(api_client_for(infra))


_VOLATILE_META = ("managedFields", "resourceVersion", "generation")


def _comparable(obj: Any) -> Any:
    """An object without the metadata the server bumps on every write."""
    if not isinstance(obj, dict):
        return obj
    out = dict(obj)
    out["metadata"] = {
        k: v for k, v in (obj.get("metadata") or {}).items() if k not in _VOLATILE_META
    }
    return out


def _plain(obj: Any) -> Any:
    """A dynamic-client ResourceInstance (or anything with to_dict) as plain data."""
    if obj is None:
        return None
    to_dict = getattr(obj, "to_dict", None)
    return to_dict() if callable(to_dict) else obj


class Kube:
    """The few cluster operations the GitOps phase needs, over the dynamic client."""

    def __init__(
        self,
        api_client: ApiClient,
        retries: int = 5,
        retry_wait: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_client = api_client
        self._dyn: Any = None
        self.retries = retries
        self.retry_wait = retry_wait
        self.sleep = sleep

    # -- discovery

    @property
    def dyn(self) -> Any:
        if self._dyn is None:
            from kubernetes.dynamic import DynamicClient

            # The library's default discovery cache is one file per API host in the shared temp
            # dir, kept across runs: a new cluster behind the same address (or another user's
            # file) would report kinds that are not served. Discovery is cached per client only.
            cache_dir = tempfile.mkdtemp(prefix="zgg-discovery-")
            weakref.finalize(self, shutil.rmtree, cache_dir, True)
            try:
                self._dyn = DynamicClient(
                    self.api_client, cache_file=os.path.join(cache_dir, "discovery.json")
                )
            except Exception as e:  # noqa: BLE001 - urllib3/ApiException/MaxRetryError: cluster not reachable
                raise self._unreachable(e) from None
        return self._dyn

    def _unreachable(self, e: Exception) -> ServiceUnavailable:
        host = getattr(self.api_client.configuration, "host", "?")
        return ServiceUnavailable(
            f"the Kubernetes API at {host} did not answer ({e.__class__.__name__})",
            "check that the cluster exists and your account may reach its DNS endpoint "
            "(roles/container.developer or higher)",
        )

    def resource(self, api_version: str, kind: str, wait: bool = False) -> Any:
        """The API resource for a kind. Discovery is re-read once for kinds that are new; with
        `wait`, a few more times with backoff (CRDs applied a moment ago become established)."""
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(ResourceNotFoundError),
            stop=tenacity.stop_after_attempt(self.retries if wait else 2),
            # the first retry only re-reads discovery; later ones back off linearly
            wait=tenacity.wait_incrementing(start=0, increment=self.retry_wait if wait else 0),
            before_sleep=lambda _: self.dyn.resources.invalidate_cache(),
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(self.dyn.resources.get, api_version=api_version, kind=kind)

    def wait_for_kind(
        self,
        api_version: str,
        kind: str,
        timeout: float,
        poll: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Block until the API serves `kind` (a CRD being installed by a chart)."""
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        def served() -> bool | None:
            try:
                self.dyn.resources.get(api_version=api_version, kind=kind)
                return True
            except ResourceNotFoundError:
                self.dyn.resources.invalidate_cache()
                return None

        poll_until(
            served,
            timeout=timeout,
            interval=poll,
            sleep=sleep,
            clock=clock,
            on_timeout=lambda: ServiceUnavailable(
                f"the cluster does not serve {kind} ({api_version}) after {int(timeout)}s",
                "its operator's Argo CD application has not installed the CRD; check it "
                "with `zenml-gcp-gitops argocd`",
            ),
        )

    def is_namespaced(self, api_version: str, kind: str) -> bool:
        return bool(self.resource(api_version, kind).namespaced)

    # -- reads

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

        try:
            res = self.resource(api_version, kind)
        except ResourceNotFoundError:
            return None  # the kind itself is not installed (yet, or any more)
        try:
            obj: dict[str, Any] = _plain(
                res.get(name=name, namespace=namespace if res.namespaced else None)
            )
            return obj
        except NotFoundError:
            return None

    def list_objects(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

        try:
            res = self.resource(api_version, kind)
        except ResourceNotFoundError:
            return []
        try:
            out = res.get(
                namespace=namespace, label_selector=label_selector, field_selector=field_selector
            )
        except NotFoundError:
            return []
        items = _plain(out).get("items") or []
        # filter again client-side: cheap, and exact even where a server ignores a selector
        if namespace is not None:
            items = [i for i in items if i.get("metadata", {}).get("namespace") == namespace]
        for term in (label_selector or "").split(","):
            if "=" in term and "!=" not in term:
                k, _, v = term.partition("=")
                items = [
                    i
                    for i in items
                    if (i.get("metadata", {}).get("labels") or {}).get(k.strip())
                    == v.strip().lstrip("=")
                ]
        return list(items)

    # -- writes

    def apply(
        self, obj: dict[str, Any], namespace: str | None = None, field_manager: str = FIELD_MANAGER
    ) -> str:
        """Server-side apply one object. Returns "unchanged", "created" or "configured".

        The apply is always sent; "unchanged" means the server's answer equals the live object.

        Fields this manager applied before but `obj` lacks are removed (SSA semantics), so
        separate concerns on one object (argocd-cm) use separate managers."""
        api_version, kind = obj["apiVersion"], obj["kind"]
        res = self.resource(api_version, kind, wait=True)
        meta = obj.setdefault("metadata", {})
        # an object read earlier carries the resourceVersion of that read: sent back, the
        # server refuses the apply (409) once anything else has written the object since
        for volatile in ("resourceVersion", "managedFields"):
            meta.pop(volatile, None)
        if res.namespaced:
            meta["namespace"] = meta.get("namespace") or namespace or "default"
        else:
            meta.pop("namespace", None)
        ns = meta.get("namespace")
        live = self.get(api_version, kind, meta["name"], ns)
        # Always send it: only the server knows which fields this manager owned before and
        # must now remove (a subset check would keep removed fields forever).
        res_ns = ns if res.namespaced else None
        result = _plain(
            res.server_side_apply(
                body=obj,
                name=meta["name"],
                namespace=res_ns,
                field_manager=field_manager,
                force_conflicts=True,
            )
        )
        if live is not None and _comparable(result) == _comparable(live):
            return "unchanged"
        return "created" if live is None else "configured"

    def merge_patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: dict[str, Any],
        namespace: str | None = None,
    ) -> None:
        res = self.resource(api_version, kind)
        res.patch(
            body=patch,
            name=name,
            namespace=namespace if res.namespaced else None,
            content_type="application/merge-patch+json",
        )

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        propagation: str = "Foreground",
    ) -> bool:
        """Delete one object; False if it was already gone (or its kind is not installed)."""
        from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

        try:
            res = self.resource(api_version, kind)
        except ResourceNotFoundError:
            return False
        try:
            res.delete(
                name=name,
                namespace=namespace if res.namespaced else None,
                body={
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "propagationPolicy": propagation,
                },
            )
        except NotFoundError:
            return False
        return True

    def events_for(self, kind: str, name: str, namespace: str | None, limit: int = 5) -> list[str]:
        """The latest Events about one object, as short lines (newest last)."""
        selector = f"involvedObject.kind={kind},involvedObject.name={name}"
        try:
            events = self.list_objects("v1", "Event", namespace=namespace, field_selector=selector)
        except Exception:  # noqa: BLE001 - diagnostics must never mask the real failure
            return []
        events = [
            e
            for e in events
            if e.get("involvedObject", {}).get("name") == name
            and e.get("involvedObject", {}).get("kind") == kind
        ]
        events.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
        return [
            f"{e.get('type', '')} {e.get('reason', '')}: {e.get('message', '')}".strip()
            for e in events[-limit:]
        ]

    def job_logs(self, job: str, namespace: str, tail: int = 200) -> list[str]:
        """The last log lines of a Job's pods (diagnostics: never raises)."""
        from kubernetes import client

        lines: list[str] = []
        try:
            pods = self.list_objects(
                "v1", "Pod", namespace=namespace, label_selector=f"job-name={job}"
            )
            core = client.CoreV1Api(self.api_client)
            for pod in pods:
                name = pod["metadata"]["name"]
                resp = core.read_namespaced_pod_log(
                    name, namespace, tail_lines=tail, _preload_content=False
                )
                text = resp.data.decode(errors="replace")  # the raw body: plain text
                lines += [f"[{name}] {line}" for line in text.splitlines()]
        except Exception as e:  # noqa: BLE001 - logs only decorate a diagnosis; never mask it
            lines.append(f"(logs unavailable: {e.__class__.__name__})")
        return lines
