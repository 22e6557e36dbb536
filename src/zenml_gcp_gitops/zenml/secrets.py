"""ZenML secrets: the values a stack's components reference as `{{<secret>.<key>}}`.

    check_secret_refs(store, spec)     every reference resolves to a non-empty value
    apply_secrets(store, spec, existing, journal)   create or update, with an undo step each
    delete_secrets(store, spec) -> [removed]

Values go to ZenML's secret store only: they are never logged, recorded or returned.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import UserError

if TYPE_CHECKING:
    from ..stack_spec import StackSpec

SECRET_REF = re.compile(r"\{\{\s*([^.\s}]+)\.([^}\s]+)\s*\}\}")


class Journal(Protocol):
    """What an apply run keeps: undo steps and what it created, updated or left alone."""

    undo: list[tuple[str, Any]]
    created: list[str]
    updated: list[str]
    unchanged: list[str]


def first(page: Any) -> Any:
    """The first item of a ZenML list page, or None."""
    items = list(page.items)
    return items[0] if items else None


def plain(value: Any) -> Any:
    """A secret field's value as ZenML returns it (SecretStr) in plain form, for comparing."""
    from pydantic import SecretStr

    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value


def find_secret(store: Any, name: str) -> Any:
    from zenml.models import SecretFilter

    return first(store.list_secrets(SecretFilter(name=name), hydrate=True))


def check_secret_refs(store: Any, spec: StackSpec) -> None:
    """Every `{{secret.key}}` a component uses must resolve to a non-empty value."""
    ours = {s.name: s for s in spec.secrets}
    for c in spec.ordered_components():
        for value in c.configuration.values():
            m = SECRET_REF.fullmatch(value) if isinstance(value, str) else None
            if m is None:
                continue
            name, key = m.group(1), m.group(2)
            if name in ours:
                v = ours[name].values.get(key)
                if v is not None and v.get_secret_value():
                    continue
            elif find_secret(store, name) is not None:
                continue  # a secret the user manages on the server
            raise UserError(
                f"{c.type} '{c.name}' references {{{{{name}.{key}}}}}, which has no value",
                "the MLflow credentials come from MLFLOW_TRACKING_USERNAME/PASSWORD or "
                "the infra phase's Secret Manager secret",
            )


def apply_secrets(store: Any, spec: StackSpec, existing: dict[str, Any], journal: Journal) -> None:
    """Create the spec's secrets, or update their values; each write gets an undo step."""
    from pydantic import SecretStr
    from zenml.models import SecretRequest, SecretUpdate

    for s in spec.secrets:
        cur = existing[f"secret:{s.name}"]
        values = {k: v.get_secret_value() for k, v in s.values.items()}
        if cur is None:
            # not private: the CI service account's runs must resolve the references
            resp = store.create_secret(
                SecretRequest(name=s.name, private=False, values=dict(s.values))
            )
            journal.undo.append((f"secret {s.name}", lambda i=resp.id: store.delete_secret(i)))
            journal.created.append(f"secret:{s.name}")
            continue
        full = store.get_secret(cur.id)
        old = {k: plain(v) for k, v in (full.values or {}).items()}
        if old == values:
            journal.unchanged.append(f"secret:{s.name}")
            continue
        # keys we no longer set are removed (None), the rest overwritten
        new: dict[str, Any] = {**dict.fromkeys(old), **s.values}
        store.update_secret(cur.id, SecretUpdate(values=new))
        journal.undo.append(
            (
                f"secret {s.name}",
                lambda i=cur.id, o=old: store.update_secret(
                    i,
                    SecretUpdate(
                        values={k: None if v is None else SecretStr(v) for k, v in o.items()}
                    ),
                ),
            )
        )
        journal.updated.append(f"secret:{s.name}")


def delete_secrets(store: Any, spec: StackSpec) -> list[str]:
    removed: list[str] = []
    for s in spec.secrets:
        sec = find_secret(store, s.name)
        if sec is not None:
            store.delete_secret(sec.id)
            removed.append(f"secret:{s.name}")
    return removed
