"""Deregistering a stack spec: only the objects that carry its labels, secrets last."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .checks import find_component, find_connector, find_stack
from .secrets import delete_secrets, has_labels, owned_secrets, usable_secret_names

if TYPE_CHECKING:
    from .stack_spec import StackSpec


def delete_stack_spec(
    store: Any, spec: StackSpec, adopt: bool = False, kept: list[str] | None = None
) -> list[str]:
    """Deregister what `apply_stack_spec` made (only objects carrying our labels).

    A same-named secret that is not ours (`secret_is_ours`) is left, with a line in `kept`,
    unless `adopt`. Ownership is decided before the components that may vouch for it go."""
    removed: list[str] = []
    spec, _ = usable_secret_names(store, spec)  # the names `apply_stack_spec` used
    comps = [(c, find_component(store, c)) for c in reversed(spec.ordered_components())]
    secrets = owned_secrets(store, spec, [x for _, x in comps], adopt, [] if kept is None else kept)
    stack = find_stack(store, spec.name)
    if stack is not None and has_labels(stack.labels, spec.labels):
        store.delete_stack(stack.id)
        removed.append(f"stack:{spec.name}")
    for c, comp in comps:
        if comp is not None and has_labels(comp.labels, spec.labels):
            store.delete_stack_component(comp.id)
            removed.append(f"{c.type}:{c.name}")
    if spec.connector is not None:
        conn = find_connector(store, spec.connector.name)
        if conn is not None and has_labels(conn.labels, spec.labels):
            store.delete_service_connector(conn.id)
            removed.append(f"connector:{spec.connector.name}")
    from .flavor_owner import release

    for f in spec.flavors:
        gone, held = release(store, f, spec.name)
        removed += gone
        if kept is not None:
            kept += held
    return removed + delete_secrets(store, secrets)
