"""ZenML secrets: the values a stack's components reference as `{{<secret>.<key>}}`.

    check_secret_refs(store, spec)     every reference resolves to a non-empty value
    secret_is_ours(store, spec, secret, components) -> bool
    apply_secrets(store, spec, existing, journal)   create or update, with an undo step each
    delete_secrets(store, spec, components, adopt, kept) -> [removed]

Values go to ZenML's secret store only: they are never logged, recorded or returned.

ZenML secrets have no labels, so ours carry one more value, `OWNER_KEY`, holding the
deployment's labels. A same-named secret without it counts as ours only when one of our
labelled components references it (made before the key existed); any other is someone
else's: register refuses it and destroy leaves it, unless told to adopt it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import UserError

if TYPE_CHECKING:
    from .stack_spec import StackSpec

SECRET_REF = re.compile(r"\{\{\s*([^.\s}]+)\.([^}\s]+)\s*\}\}")
OWNER_KEY = "zenml_gcp_gitops_owner"
# ZenML's KeyError for a secret whose record exists without its values (see `values_lost`)
VALUES_NOT_STORED = "have not been stored"
MAX_SPARE_NAMES = 5  # `<name>-v2` .. `<name>-v5`


class Journal(Protocol):
    """What an apply run keeps: undo steps and what it created, updated or left alone."""

    undo: list[tuple[str, Any]]
    created: list[str]
    updated: list[str]
    unchanged: list[str]
    inflight: tuple[str, str] | None  # (verb, "kind:name") of the write under way


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


def has_labels(obj_labels: dict[str, Any] | None, wanted: dict[str, str]) -> bool:
    have = obj_labels or {}
    return all(str(have.get(k)) == v for k, v in wanted.items())


def owner_mark(spec: StackSpec) -> str:
    """The `OWNER_KEY` value of the spec's secrets: its labels, canonical JSON."""
    return json.dumps(spec.labels, sort_keys=True, separators=(",", ":"))


def references(component: Any, secret_name: str) -> bool:
    """Does a (server-side) component's configuration reference `{{secret_name.key}}`?"""
    for value in dict(getattr(component, "configuration", None) or {}).values():
        m = SECRET_REF.fullmatch(value) if isinstance(value, str) else None
        if m is not None and m.group(1) == secret_name:
            return True
    return False


def secret_is_ours(store: Any, spec: StackSpec, secret: Any, components: Iterable[Any]) -> bool:
    """Ours: it carries our `OWNER_KEY`, or (made before that key) has none and one of our
    labelled `components` references it."""
    full = store.get_secret(secret.id)
    mark = plain((full.values or {}).get(OWNER_KEY))
    if mark is not None:
        return bool(mark == owner_mark(spec))
    return any(
        c is not None and has_labels(c.labels, spec.labels) and references(c, secret.name)
        for c in components
    )


def find_secret(store: Any, name: str) -> Any:
    from zenml.models import SecretFilter

    return first(store.list_secrets(SecretFilter(name=name), hydrate=True))


def spare_name(name: str, n: int = 2) -> str:
    """The name a secret takes when a record without values holds `name` (n = 2, 3, ...)."""
    return name if n == 1 else f"{name}-v{n}"


def next_spare_name(name: str) -> str:
    """The name a re-run tries after `name` (`x` -> `x-v2`, `x-v2` -> `x-v3`)."""
    m = re.fullmatch(r"(.+)-v(\d+)", name)
    return spare_name(m.group(1), int(m.group(2)) + 1) if m else spare_name(name)


def values_lost(store: Any, secret: Any) -> bool:
    """True for a record whose values are gone: ZenML commits a new secret's record, then
    its values; a server that dies in between keeps the record. ZenML 0.98 then answers
    every read, update and delete of it with a KeyError (each reads the values first)."""
    try:
        store.get_secret(secret.id)
    except KeyError as e:
        if VALUES_NOT_STORED in str(e):
            return True
        raise
    return False


def usable_secret_names(store: Any, spec: StackSpec) -> tuple[StackSpec, list[str]]:
    """The spec with each secret under the first of `name`, `name-v2`, ... that is free or
    readable (components' references follow), and a note for each record passed over.
    Every run decides the same, so re-runs and the teardown find the same secret."""
    renames: dict[str, str] = {}
    notes: list[str] = []
    for s in spec.secrets:
        for n in range(1, MAX_SPARE_NAMES + 1):
            name = spare_name(s.name, n)
            found = find_secret(store, name)
            if found is None or not values_lost(store, found):
                break
            notes.append(
                f"ZenML secret '{name}' is a record without its values (its server stopped "
                "while creating it); ZenML cannot read or delete it, so it is left alone"
            )
        else:
            raise UserError(
                f"ZenML secrets '{s.name}' to '{name}' are all records without values",
                "delete them from the ZenML server's database (the API cannot), then re-run",
            )
        if name != s.name:
            renames[s.name] = name
    return (_renamed(spec, renames) if renames else spec), notes


def _renamed(spec: StackSpec, renames: dict[str, str]) -> StackSpec:
    def ref(value: Any) -> Any:
        m = SECRET_REF.fullmatch(value) if isinstance(value, str) else None
        if m is None or m.group(1) not in renames:
            return value
        return "{{" + f"{renames[m.group(1)]}.{m.group(2)}" + "}}"

    comps = {
        t: c.model_copy(update={"configuration": {k: ref(v) for k, v in c.configuration.items()}})
        for t, c in spec.components.items()
    }
    secrets = tuple(
        s.model_copy(update={"name": renames.get(s.name, s.name)}) for s in spec.secrets
    )
    return spec.model_copy(update={"components": comps, "secrets": secrets})


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

    mark = owner_mark(spec)
    for s in spec.secrets:
        cur = existing[f"secret:{s.name}"]
        want: dict[str, SecretStr | None] = {**s.values, OWNER_KEY: SecretStr(mark)}
        values = {k: v.get_secret_value() for k, v in want.items() if v is not None}
        if cur is None:
            journal.inflight = ("created", f"secret:{s.name}")
            # not private: the CI service account's runs must resolve the references
            resp = store.create_secret(SecretRequest(name=s.name, private=False, values={**want}))
            journal.inflight = None
            journal.undo.append((f"secret {s.name}", lambda i=resp.id: store.delete_secret(i)))
            journal.created.append(f"secret:{s.name}")
            continue
        full = store.get_secret(cur.id)
        old = {k: plain(v) for k, v in (full.values or {}).items()}
        if old == values:
            journal.unchanged.append(f"secret:{s.name}")
            continue
        # keys we no longer set are removed (None), the rest overwritten
        new: dict[str, Any] = {**dict.fromkeys(old), **want}
        journal.inflight = ("updated", f"secret:{s.name}")
        store.update_secret(cur.id, SecretUpdate(values=new))
        journal.inflight = None
        back = {**dict.fromkeys(k for k in want if k not in old), **old}
        journal.undo.append(
            (
                f"secret {s.name}",
                lambda i=cur.id, o=back: store.update_secret(
                    i,
                    SecretUpdate(
                        values={k: None if v is None else SecretStr(v) for k, v in o.items()}
                    ),
                ),
            )
        )
        journal.updated.append(f"secret:{s.name}")


def owned_secrets(
    store: Any, spec: StackSpec, components: Iterable[Any], adopt: bool, kept: list[str]
) -> list[Any]:
    """The spec's secrets on the server that a teardown may delete; a line in `kept` for
    each one that is someone else's (deleted only with `adopt`)."""
    comps = list(components)
    out: list[Any] = []
    for s in spec.secrets:
        sec = find_secret(store, s.name)
        if sec is None:
            continue
        if adopt or secret_is_ours(store, spec, sec, comps):
            out.append(sec)
        else:
            kept.append(
                f"left ZenML secret '{s.name}': not made by this deployment "
                "(pass --adopt to delete it too)"
            )
    return out


def delete_secrets(store: Any, secrets: Iterable[Any]) -> list[str]:
    removed: list[str] = []
    for sec in secrets:
        store.delete_secret(sec.id)
        removed.append(f"secret:{sec.name}")
    return removed
