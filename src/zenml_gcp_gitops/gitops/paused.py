"""What the rendered app-of-apps says while the stack is paused: every pod count zero.

Argo CD applies the desired state as it is, so a paused stack stays paused through any sync;
`resume` renders the running values again. Only the charts' own replica settings change.
"""

from __future__ import annotations

from typing import Any

# helm value paths that count each chart's pods (apps/components.yaml keys)
REPLICA_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    "external_secrets": (("replicaCount",), ("webhook", "replicaCount"),
                         ("certController", "replicaCount")),
    "cert_manager": (("replicaCount",), ("webhook", "replicaCount"),
                     ("cainjector", "replicaCount")),
    "ingress_nginx": (("controller", "replicaCount"),),
    "zenml_server": (("zenml", "replicaCount"),),
    "mlflow": (("replicaCount",),),
}  # fmt: skip
# settings that would bring pods back or need a live API: off while paused
OFF_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    "cert_manager": (("startupapicheck", "enabled"),),  # a hook that waits for the webhook
    "ingress_nginx": (("controller", "autoscaling", "enabled"),),
}
# the apps' namespaces (config names.namespaces keys) whose pods `pause` waits to be gone
PAUSED_NAMESPACES: dict[str, str] = {
    "external_secrets": "external_secrets",
    "cert_manager": "cert_manager",
    "ingress_nginx": "ingress",
    "zenml_server": "zenml",
    "mlflow": "mlflow",
}


def _set(values: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = values
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value


def paused_values(key: str, values: dict[str, Any]) -> dict[str, Any]:
    """A copy of one chart's values with its pods at zero (unchanged for other apps)."""
    if key not in REPLICA_PATHS:
        return values
    import copy

    out = copy.deepcopy(values)
    for path in REPLICA_PATHS[key]:
        _set(out, path, 0)
    for path in OFF_PATHS.get(key, ()):
        _set(out, path, False)
    return out
