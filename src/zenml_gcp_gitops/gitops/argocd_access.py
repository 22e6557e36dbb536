"""Reach the Argo CD UI without exposing it: a local port-forward and the admin password.

Only exercised against a real cluster; the unit tests cover the password lookup and the
pod selection with kmock.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ServiceUnavailable, UserError

if TYPE_CHECKING:
    from .kube import Kube

INITIAL_ADMIN_SECRET = "argocd-initial-admin-secret"
SERVER_SELECTOR = "app.kubernetes.io/name=argocd-server"
SERVER_PORT = 8080  # argocd-server's container port (TLS, self-signed)


def admin_password(kube: Kube, namespace: str) -> str:
    secret = kube.get("v1", "Secret", INITIAL_ADMIN_SECRET, namespace)
    encoded = ((secret or {}).get("data") or {}).get("password")
    if not encoded:
        raise UserError(
            f"{namespace}/{INITIAL_ADMIN_SECRET} does not exist",
            "Argo CD deletes it once the admin password is changed: log in with the password you set",
        )
    return base64.b64decode(encoded).decode()


def server_pod(kube: Kube, namespace: str) -> str:
    pods = kube.list_objects("v1", "Pod", namespace=namespace, label_selector=SERVER_SELECTOR)
    running = [
        p["metadata"]["name"]
        for p in pods
        if (p.get("status") or {}).get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")
    ]
    if not running:
        raise ServiceUnavailable(
            f"no running argocd-server pod in namespace {namespace}",
            "wait for the gitops phase to finish, or check `kubectl -n argocd get pods`",
        )
    return str(sorted(running)[0])


def _pump(src: Any, dst: Any) -> None:
    with contextlib.suppress(OSError):
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    for s in (src, dst):
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)


def port_forward(
    kube: Kube,
    namespace: str,
    local_port: int,
    announce: Callable[[str], None],
    remote_port: int = SERVER_PORT,
) -> None:
    """Forward 127.0.0.1:local_port to the argocd-server pod until interrupted."""
    from kubernetes import client
    from kubernetes.stream import portforward

    core = client.CoreV1Api(kube.api_client)
    pod = server_pod(kube, namespace)
    try:
        server = socket.create_server(("127.0.0.1", local_port))
    except OSError:
        raise UserError(
            f"local port {local_port} is in use", "pass --port with a free port"
        ) from None

    def handle(conn: socket.socket) -> None:
        pf = portforward(
            core.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(remote_port)
        )
        remote = pf.socket(remote_port)
        remote.setblocking(True)
        t = threading.Thread(target=_pump, args=(remote, conn), daemon=True)
        t.start()
        _pump(conn, remote)
        t.join(timeout=5)
        with contextlib.suppress(Exception):
            pf.close()

    announce(f"https://localhost:{local_port}")
    with server:
        try:
            while True:
                conn, _ = server.accept()
                threading.Thread(target=handle, args=(conn,), daemon=True).start()
        except KeyboardInterrupt:
            return
