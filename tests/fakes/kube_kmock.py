"""A stateful fake Kubernetes API (kmock) served from a thread, for the GitOps phase tests.

kmock 0.8 stores objects and answers list/get/patch/delete like an API server, on a free
loopback port. Three gaps are bridged here, in test setup only (never in product code):

- named namespace URLs (`/api/v1/namespaces/NAME`) are parsed by kmock as "namespace NAME"
  with no resource, which is why the typed client's `create_namespace` fails on it: we
  re-map them to the `namespaces` resource;
- server-side apply of an object that does not exist yet (a PATCH) is a create on a real
  API server; kmock answers 404, so we turn it into a create (kmock answers 200 instead of
  201 on create, which the dynamic client does not mind);
- list responses get the `kind`/`apiVersion` the dynamic client needs;
- server-side apply removes the fields its field manager applied before and no longer
  sends (kmock merges every patch): the bridge remembers each manager's last applied body
  and adds merge-patch deletions (`None`) for what was dropped.

Like an API server, and unlike kmock alone: with `FakeCluster(crds_installed=False)` the kinds
a CRD brings (Argo CD's, Gateway API's, External Secrets') are not in discovery until their
CustomResourceDefinition is created (a chart installing it, or `install_crd`); deleting a
Namespace deletes what is in it, and deleting an object deletes the objects that name it in
their ownerReferences (the garbage collector's cascade); every write gives the object a new
`metadata.resourceVersion`, and a write that carries an older one is refused with 409
Conflict, as optimistic concurrency on a real API server.

`FakeCluster` also lets a test act as the controllers (Argo CD, GKE): read and change the
stored objects from the test thread while the product code polls over HTTP.
"""

from __future__ import annotations

import asyncio
import copy
import re
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import attrs
import kmock
from kmock._internal import apps, enums, k8s, rendering

# plural path -> (kind, namespaced)
RESOURCES: dict[str, tuple[str, bool]] = {
    "v1/namespaces": ("Namespace", False),
    "v1/configmaps": ("ConfigMap", True),
    "v1/secrets": ("Secret", True),
    "v1/services": ("Service", True),
    "v1/serviceaccounts": ("ServiceAccount", True),
    "v1/pods": ("Pod", True),
    "v1/events": ("Event", True),
    "v1/persistentvolumeclaims": ("PersistentVolumeClaim", True),
    "apps/v1/deployments": ("Deployment", True),
    "apps/v1/statefulsets": ("StatefulSet", True),
    "batch/v1/jobs": ("Job", True),
    "policy/v1/poddisruptionbudgets": ("PodDisruptionBudget", True),
    "rbac.authorization.k8s.io/v1/roles": ("Role", True),
    "rbac.authorization.k8s.io/v1/rolebindings": ("RoleBinding", True),
    "rbac.authorization.k8s.io/v1/clusterroles": ("ClusterRole", False),
    "rbac.authorization.k8s.io/v1/clusterrolebindings": ("ClusterRoleBinding", False),
    "networking.k8s.io/v1/networkpolicies": ("NetworkPolicy", True),
    "apiextensions.k8s.io/v1/customresourcedefinitions": ("CustomResourceDefinition", False),
    "argoproj.io/v1alpha1/applications": ("Application", True),
    "argoproj.io/v1alpha1/appprojects": ("AppProject", True),
    "gateway.networking.k8s.io/v1/gateways": ("Gateway", True),
    "external-secrets.io/v1/clustersecretstores": ("ClusterSecretStore", False),
    "external-secrets.io/v1/externalsecrets": ("ExternalSecret", True),
}
KIND_TO_PLURAL = {kind: plural for plural, (kind, _) in RESOURCES.items()}
# the groups whose kinds come from a CRD, not from the API server itself
CRD_GROUPS = ("argoproj.io", "gateway.networking.k8s.io", "external-secrets.io")
_CRDS = "apiextensions.k8s.io/v1/customresourcedefinitions"
_NAMED_NAMESPACE = re.compile(r"^/api/v1/namespaces/([^/]+)$")


@attrs.frozen
class ResourceVersionConflict(k8s.KubernetesError):
    status: int = 409
    reason: str = "Conflict"
    message: str = (
        "Operation cannot be fulfilled: the object has been modified; please apply your "
        "changes to the latest version and try again"
    )


class PatchedEmulator(k8s.KubernetesEmulator):
    """kmock's emulator with the three gaps above bridged."""

    async def _handle(self, request: rendering.Request) -> Any:
        original = request
        request = self._versioned(self._bridge(request))
        if request is not original:
            # kmock matches reactions against its request log by identity: log the fixed one
            for i, logged in enumerate(self._requests):
                if logged is original:
                    self._requests[i] = request
        response = await super()._handle(request)
        self._after(request)
        return response

    def _versioned(self, request: rendering.Request) -> rendering.Request:
        """Optimistic concurrency: check the write's resourceVersion, stamp a new one."""
        if (
            request.action not in (enums.action.CREATE, enums.action.UPDATE)
            or request.resource is None
        ):
            return request
        data = dict(request.data or {})
        meta = dict(data.get("metadata") or {})
        name = request.name or meta.get("name")
        key = (request.resource, request.namespace or meta.get("namespace"), name)
        sent = meta.get("resourceVersion")
        if sent is not None and key in self.objects and not self.objects[key].deleted:
            stored = (self.objects[key].raw.get("metadata") or {}).get("resourceVersion")
            if str(sent) != str(stored):
                raise ResourceVersionConflict()
        counter = self.__dict__.setdefault("_rv", [100])
        counter[0] += 1
        meta["resourceVersion"] = str(counter[0])
        data["metadata"] = meta
        return attrs.evolve(request, data=data)

    def _after(self, request: rendering.Request) -> None:
        """What the API server does after a write: serve a new CRD's kind; cascade a delete."""
        res = request.resource
        if res is None or request.name is None:
            return
        plural = (
            f"{res.group}/{res.version}/{res.plural}"
            if res.group
            else f"{res.version}/{res.plural}"
        )
        key = (res, request.namespace, request.name)
        writes = (enums.method.POST, enums.method.PATCH, enums.method.PUT)
        installed = key in self.objects and not self.objects[key].deleted
        if plural == _CRDS and request.method in writes and installed:
            spec = self.objects[key].raw.get("spec") or {}
            for v in spec.get("versions") or []:
                served = (
                    f"{spec.get('group')}/{v.get('name')}/{(spec.get('names') or {}).get('plural')}"
                )
                if served in RESOURCES:
                    self._serve_kind(served)
        if request.method == enums.method.DELETE:
            self._cascade(plural, request.namespace, request.name)

    def _serve_kind(self, plural: str) -> None:
        kind, namespaced = RESOURCES[plural]
        self.resources[plural] = kmock.ResourceInfo(
            kind=kind,
            namespaced=namespaced,
            singular=kind.lower(),
            verbs={"get", "list", "create", "patch", "update", "delete", "watch"},
        )

    def _cascade(self, plural: str, namespace: str | None, name: str) -> None:
        kind = RESOURCES.get(plural, ("", False))[0]
        for (res, ns, n), obj in list(self.objects.items()):
            if obj.deleted:
                continue
            in_namespace = kind == "Namespace" and ns == name
            owners = (obj.raw.get("metadata") or {}).get("ownerReferences") or []
            owned = ns == namespace and any(
                o.get("kind") == kind and o.get("name") == name for o in owners
            )
            if in_namespace or owned:
                obj.delete()
                self._cascade(
                    f"{res.group}/{res.version}/{res.plural}"
                    if res.group
                    else f"{res.version}/{res.plural}",
                    ns,
                    n,
                )

    def _bridge(self, request: rendering.Request) -> rendering.Request:
        m = _NAMED_NAMESPACE.match(request.url.path)
        if m:
            action = {
                enums.method.GET: enums.action.FETCH,
                enums.method.PATCH: enums.action.UPDATE,
                enums.method.DELETE: enums.action.DELETE,
            }.get(request.method, request.action)
            request = attrs.evolve(
                request,
                resource=kmock.resource("v1/namespaces"),
                namespace=None,
                name=m.group(1),
                action=action,
            )
        is_apply = "apply-patch" in request.headers.get("Content-Type", "")
        if request.method == enums.method.PATCH and is_apply and request.resource is not None:
            key = (request.resource, request.namespace, request.name)
            missing = key not in self.objects or self.objects[key].deleted
            manager = str(dict(request.params).get("fieldManager", ""))
            applied = self.__dict__.setdefault("_applied", {})
            previous = None if missing else applied.get((key, manager))
            applied[(key, manager)] = copy.deepcopy(dict(request.data or {}))
            if previous is not None:
                data = _merge(dict(request.data or {}), _dropped(previous, request.data or {}))
                request = attrs.evolve(request, data=data)
            if missing:
                data = dict(request.data or {})
                meta = dict(data.get("metadata") or {})
                if request.namespace:
                    meta["namespace"] = request.namespace
                data["metadata"] = meta
                request = attrs.evolve(request, action=enums.action.CREATE, data=data)
        return request

    async def _serve_list(self, request: rendering.Request) -> Any:
        payload = await super()._serve_list(request)
        res = request.resource
        assert res is not None
        plural = (
            f"{res.group}/{res.version}/{res.plural}"
            if res.group
            else f"{res.version}/{res.plural}"
        )
        kind = RESOURCES.get(plural, (str(res.plural).capitalize(), True))[0]
        payload["kind"] = f"{kind}List"
        payload["apiVersion"] = f"{res.group}/{res.version}" if res.group else str(res.version)
        return payload


def _dropped(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Merge-patch deletions for the keys `before` set and `after` no longer sets."""
    out: dict[str, Any] = {}
    for k, v in before.items():
        if k not in after:
            out[k] = None
        elif isinstance(v, dict) and isinstance(after[k], dict):
            sub = _dropped(v, after[k])
            if sub:
                out[k] = sub
    return out


def _merge(data: dict[str, Any], deletions: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    for k, v in deletions.items():
        out[k] = (
            _merge(dict(out[k]), v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        )
    return out


def _key(
    api_version: str, kind: str, namespace: str | None, name: str
) -> tuple[Any, str | None, str]:
    return (kmock.resource(KIND_TO_PLURAL[kind]), namespace, name)


class FakeCluster:
    """kmock in a background event loop, with thread-safe access to its objects."""

    def __init__(self, crds_installed: bool = True) -> None:
        self.crds_installed = crds_installed
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.emu: PatchedEmulator | None = None
        self.url = ""
        self._thread = threading.Thread(target=self._run, name="kmock", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            emu = PatchedEmulator()
            for plural in RESOURCES:
                if self.crds_installed or not plural.startswith(CRD_GROUPS):
                    emu._serve_kind(plural)
            async with emu, apps.Server(emu) as server:  # a free port on 127.0.0.1
                self.emu = emu
                self.url = str(server.url).rstrip("/")
                self._ready.set()
                await self._stop.wait()

        try:
            loop.run_until_complete(main())
        except BaseException as e:  # noqa: BLE001 - surfaced by start() in the caller's thread
            self._error = e
            self._ready.set()
        finally:
            loop.close()

    def start(self) -> FakeCluster:
        self._thread.start()
        if not self._ready.wait(15) or self._error is not None:
            raise RuntimeError(f"kmock did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    # -- client side

    def api_client(self) -> Any:
        from kubernetes import client

        conf = client.Configuration()
        conf.host = self.url
        return client.ApiClient(conf)

    # -- controller side (runs on kmock's loop, under its lock)

    def _call(self, fn: Callable[[PatchedEmulator], Any]) -> Any:
        assert self._loop is not None and self.emu is not None
        emu = self.emu

        async def run() -> Any:
            async with emu._lock:
                return fn(emu)

        coro: Coroutine[Any, Any, Any] = run()
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        key = _key("", kind, namespace, name)

        def read(emu: PatchedEmulator) -> dict[str, Any] | None:
            if key not in emu.objects or emu.objects[key].deleted:
                return None
            return dict(emu.objects[key].raw)

        result: dict[str, Any] | None = self._call(read)
        return result

    def names(self, kind: str, namespace: str | None = None) -> list[str]:
        plural = kmock.resource(KIND_TO_PLURAL[kind])

        def read(emu: PatchedEmulator) -> list[str]:
            return sorted(
                name
                for (res, ns, name), obj in emu.objects.items()
                if res == plural and not obj.deleted and (namespace is None or ns == namespace)
            )

        result: list[str] = self._call(read)
        return result

    def put(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        key = _key(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])

        def write(emu: PatchedEmulator) -> None:
            if key in emu.objects and not emu.objects[key].deleted:
                emu.objects[key].patch(obj)
            elif key in emu.objects:
                emu.objects[key].create(obj)
            else:
                emu.objects[key] = obj

        self._call(write)

    def patch(self, kind: str, name: str, namespace: str | None, changes: dict[str, Any]) -> None:
        key = _key("", kind, namespace, name)
        self._call(lambda emu: emu.objects[key].patch(changes))

    def install_crd(self, kind: str) -> None:
        """A chart's CRD becomes established: discovery serves `kind` from now on."""
        self._call(lambda emu: emu._serve_kind(KIND_TO_PLURAL[kind]))

    def uninstall_crd(self, kind: str) -> None:
        """The CRD is gone (a new cluster behind the same address): `kind` is no longer served."""
        plural = KIND_TO_PLURAL[kind]
        self._call(lambda emu: emu.resources.pop(plural, None))

    def served(self, kind: str) -> bool:
        plural = KIND_TO_PLURAL[kind]
        res = kmock.resource(plural)
        found: bool = self._call(lambda emu: res in list(emu.resources.keys()))
        return found

    def remove(self, kind: str, name: str, namespace: str | None = None) -> None:
        """Make an object disappear, as its controller would after finalizing it."""
        key = _key("", kind, namespace, name)

        def drop(emu: PatchedEmulator) -> None:
            if key in emu.objects and not emu.objects[key].deleted:
                emu.objects[key].delete()

        self._call(drop)

    def request_log(self) -> list[tuple[str, str]]:
        """(method, path) of every request served so far."""
        return [(m, p) for m, p, _ in self.requests()]

    def requests(self) -> list[tuple[str, str, dict[str, str]]]:
        """(method, path, query parameters) of every request served so far."""
        assert self.emu is not None
        return [
            (str(r.method.value if r.method else ""), r.url.path, dict(r.params))
            for r in list(self.emu._requests)
        ]
