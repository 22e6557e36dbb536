"""The writes of the generic stack-spec applier: upsert by name, and roll back on failure.

    apply_stack_spec(store, spec, adopt=False, verify=None) -> RegisterResult
    delete_stack_spec(store, spec, adopt, kept) -> list[str]   (deregister.py)
    stack_status, verify_connector, find_stack_id, count_objects: the reads, from `checks.py`

Upserts are by name. Objects we made carry the spec's labels; a same-named object without
them is someone else's and is refused (`ForeignObjectError`) unless `adopt=True`. Everything
is validated before the first write (`checks.py`); if a write fails midway, whatever this
run created is deleted again and whatever it updated is put back.

The connector, component and stack steps stay in one `_Applier`: they share one undo journal
and the swap steps that must run after the stack points at the new objects. Secrets have
their own module (`secrets.py`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from ..errors import Interrupted, PhaseError, UserError

# the read-only side (`checks.py`) stays importable from here
from .checks import ForeignObjectError as ForeignObjectError
from .checks import connector_request, find_connector, find_stack, preflight
from .checks import count_objects as count_objects
from .checks import find_stack_id as find_stack_id
from .checks import stack_status as stack_status
from .checks import verify_connector as verify_connector
from .secrets import (
    apply_secrets,
    find_secret,
    first,
    has_labels,
    next_spare_name,
    plain,
    usable_secret_names,
)

if TYPE_CHECKING:
    from .stack_spec import ComponentSpec, StackSpec


# ---------------------------------------------------------------------------------- register


@dataclass
class ObjRef:
    id: str
    name: str
    extra: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, **self.extra}


@dataclass
class RegisterResult:
    stack: ObjRef
    components: dict[str, ObjRef]
    connector: ObjRef | None
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    verification: dict[str, Any] | None = None
    log: list[str] = field(default_factory=list)

    def public_dict(self) -> dict[str, Any]:
        """The `register --output json` contract."""
        return {
            "stack": self.stack.as_dict(),
            "components": {t: r.as_dict() for t, r in self.components.items()},
            "connector": self.connector.as_dict() if self.connector else None,
        }

    def summary(self) -> dict[str, Any]:
        return {
            **self.public_dict(),
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "verification": self.verification,
        }


class _Applier:
    """One apply run's writes, after `checks.preflight`, with an undo journal."""

    def __init__(self, store: Any, spec: StackSpec, connector_type: Any = None) -> None:
        self.store = store
        self.spec = spec
        self.connector_type = connector_type  # the server's, as preflight found it
        self.undo: list[tuple[str, Any]] = []  # (description, callable)
        self.created: list[str] = []
        self.updated: list[str] = []
        self.swap: tuple[Any, Any] | None = None  # (old, new) connector ids on an auth change
        self.component_swaps: list[tuple[Any, Any, str]] = []  # (old, new, name): new flavor
        self.unchanged: list[str] = []
        self.notes: list[str] = []  # said once the run is done (e.g. a newer flavor kept)
        self.inflight: tuple[str, str] | None = None  # (verb, "kind:name") being written
        self.swapping = False  # past the point of undo (`finish_swaps`)
        self.undo_errors: dict[str, str] = {}  # why an undo step failed

    def write(self, verb: str, what: str, call: Any, *args: Any) -> Any:
        """One write; while it is under way, `inflight` names it (a lost answer leaves it
        unknown whether the server applied it)."""
        self.inflight = (verb, what)
        resp = call(*args)
        self.inflight = None
        return resp

    # -- writes
    def apply_flavors(self, existing: dict[str, Any]) -> None:
        """Register missing flavors with this stack as owner; rewrite an existing one only
        from a release at least as new as the one that wrote it (`flavor_owner`)."""
        from zenml.models import FlavorUpdate

        from ..flavors import VERSION
        from . import flavor_owner

        owner = self.spec.name
        for f in self.spec.flavors:
            cur, req = existing[f"flavor:{f.type}:{f.name}"]
            if cur is None:
                req = req.model_copy(
                    update={
                        "config_schema": flavor_owner.marked(req.config_schema, VERSION, {owner})
                    }
                )
                resp = self.write("created", f"flavor:{f.name}", self.store.create_flavor, req)
                self.undo.append(
                    (f"flavor {f.name}", lambda i=resp.id: self.store.delete_flavor(i))
                )
                self.created.append(f"flavor:{f.name}")
                continue
            up = flavor_owner.upsert(
                cur.config_schema, cur.source, req.config_schema, req.source, owner, f.name
            )
            if up.note:
                self.notes.append(up.note)
            if up.schema is None and up.source is None:
                self.unchanged.append(f"flavor:{f.name}")
                continue
            self.write(
                "updated",
                f"flavor:{f.name}",
                self.store.update_flavor,
                cur.id,
                # only the fields to change: a None field would be written as null
                FlavorUpdate(**{k: v for k, v in up.changes().items() if v is not None}),
            )
            prev = FlavorUpdate(config_schema=cur.config_schema, source=cur.source)
            self.undo.append(
                (f"flavor {f.name}", lambda i=cur.id, p=prev: self.store.update_flavor(i, p))
            )
            self.updated.append(f"flavor:{f.name}")

    def apply_connector(self, existing: dict[str, Any]) -> Any:
        from zenml.models import ServiceConnectorUpdate

        c = self.spec.connector
        if c is None:
            return None
        cur = existing["connector"]
        req = connector_request(self.spec, self.connector_type)
        if cur is None:
            resp = self.write(
                "created", f"connector:{c.name}", self.store.create_service_connector, req
            )
            self.undo.append(
                (f"connector {c.name}", lambda i=resp.id: self.store.delete_service_connector(i))
            )
            self.created.append(f"connector:{c.name}")
            return resp
        full = self.store.get_service_connector(cur.id, expand_secrets=True)
        old_conf = {k: plain(v) for k, v in dict(full.configuration or {}).items()}
        want_conf = {k: plain(v) for k, v in dict(req.configuration).items()}
        same = (
            full.auth_method == c.auth_method
            and old_conf == want_conf  # expand_secrets: secret fields compare by value too
            and has_labels(full.labels, self.spec.labels)
            and sorted(full.resource_types) == sorted(req.resource_types)
        )
        if same:
            self.unchanged.append(f"connector:{c.name}")
            return full
        if full.auth_method != c.auth_method:
            # ZenML refuses to change the auth method of a connector that components use:
            # register a new one under a temporary name, re-link the components to it, and
            # swap names once the stack is done (`finish_connector_swap`).
            tmp = req.model_copy(update={"name": f"{c.name}-{uuid.uuid4().hex[:6]}"})
            resp = self.write(
                "created", f"connector:{tmp.name}", self.store.create_service_connector, tmp
            )
            self.undo.append(
                (f"connector {tmp.name}", lambda i=resp.id: self.store.delete_service_connector(i))
            )
            self.swap = (cur.id, resp.id)
            self.updated.append(f"connector:{c.name}")
            return resp
        update = ServiceConnectorUpdate(
            name=c.name,
            connector_type=c.type,
            auth_method=c.auth_method,
            resource_types=req.resource_types,
            resource_id=req.resource_id,
            configuration=req.configuration,
            labels={**(full.labels or {}), **self.spec.labels},
        )
        resp = self.write(
            "updated", f"connector:{c.name}", self.store.update_service_connector, cur.id, update
        )
        prev = ServiceConnectorUpdate(
            auth_method=full.auth_method,
            resource_types=full.resource_types,
            resource_id=full.resource_id,
            configuration=full.configuration,  # expanded: secret fields included
            labels=full.labels,
        )
        self.undo.append(
            (
                f"connector {c.name}",
                lambda i=cur.id, p=prev: self.store.update_service_connector(i, p),
            )
        )
        self.updated.append(f"connector:{c.name}")
        return resp

    def apply_component(self, c: ComponentSpec, connector: Any, cur: Any) -> Any:
        from zenml.enums import StackComponentType
        from zenml.models import ComponentRequest, ComponentUpdate

        connector_id = (
            connector.id if (connector is not None and c.connector_resource_type) else None
        )
        resource_id = c.connector_resource_id if connector_id else None
        # ZenML cannot change a component's flavor: make a new one under a temporary name and
        # swap names once the stack points at it (`finish_swaps`).
        replacing = cur is not None and cur.flavor_name != c.flavor
        if cur is None or replacing:
            name = f"{c.name}-{uuid.uuid4().hex[:6]}" if replacing else c.name
            resp = self.write(
                "created",
                f"{c.type}:{name}",
                self.store.create_stack_component,
                ComponentRequest(
                    name=name,
                    type=StackComponentType(c.type),
                    flavor=c.flavor,
                    configuration=dict(c.configuration),
                    labels=dict(self.spec.labels),
                    connector=connector_id,
                    connector_resource_id=resource_id,
                ),
            )
            self.undo.append(
                (f"{c.type} {name}", lambda i=resp.id: self.store.delete_stack_component(i))
            )
            if replacing:
                self.component_swaps.append((cur.id, resp.id, c.name))
                self.updated.append(f"{c.type}:{c.name} (flavor {cur.flavor_name} -> {c.flavor})")
            else:
                self.created.append(f"{c.type}:{c.name}")
            return resp
        full = cur  # the lookup was hydrated: configuration, labels and connector are there
        cur_connector = full.connector.id if full.connector else None
        same = (
            dict(full.configuration) == dict(c.configuration)
            and has_labels(full.labels, self.spec.labels)
            and cur_connector == connector_id
            and (full.connector_resource_id or None) == resource_id
        )
        if same:
            self.unchanged.append(f"{c.type}:{c.name}")
            return full
        resp = self.write(
            "updated",
            f"{c.type}:{c.name}",
            self.store.update_stack_component,
            cur.id,
            ComponentUpdate(
                configuration=dict(c.configuration),
                labels={**(full.labels or {}), **self.spec.labels},
                connector=connector_id,
                connector_resource_id=resource_id,
            ),
        )
        prev = ComponentUpdate(
            configuration=dict(full.configuration),
            labels=dict(full.labels or {}),
            connector=cur_connector,
            connector_resource_id=full.connector_resource_id,
        )
        self.undo.append(
            (f"{c.type} {c.name}", lambda i=cur.id, p=prev: self.store.update_stack_component(i, p))
        )
        self.updated.append(f"{c.type}:{c.name}")
        return resp

    def apply_stack(self, comp_ids: dict[str, UUID], cur: Any) -> Any:
        from zenml.enums import StackComponentType
        from zenml.models import StackRequest, StackUpdate

        components: dict[StackComponentType, list[Any]] = {
            StackComponentType(t): [i] for t, i in comp_ids.items()
        }
        if cur is None:
            resp = self.write(
                "created",
                f"stack:{self.spec.name}",
                self.store.create_stack,
                StackRequest(
                    name=self.spec.name,
                    description=f"Managed by zenml-gcp-gitops ({self.spec.name})",
                    components=components,
                    labels=dict(self.spec.labels),
                ),
            )
            self.undo.append(
                (f"stack {self.spec.name}", lambda i=resp.id: self.store.delete_stack(i))
            )
            self.created.append(f"stack:{self.spec.name}")
            return resp
        full = cur  # hydrated by the lookup
        have = {str(t): [x.id for x in v] for t, v in full.components.items()}
        want = {str(t): v for t, v in components.items()}
        if have == want and has_labels(full.labels, self.spec.labels):
            self.unchanged.append(f"stack:{self.spec.name}")
            return full
        resp = self.write(
            "updated",
            f"stack:{self.spec.name}",
            self.store.update_stack,
            cur.id,
            StackUpdate(components=components, labels={**(full.labels or {}), **self.spec.labels}),
        )
        prev = StackUpdate(
            components={StackComponentType(t): v for t, v in have.items()},
            labels=dict(full.labels or {}),
        )
        self.undo.append(
            (f"stack {self.spec.name}", lambda i=cur.id, p=prev: self.store.update_stack(i, p))
        )
        self.updated.append(f"stack:{self.spec.name}")
        return resp

    def finish_swaps(self) -> Any:
        """After the stack is done: drop replaced components and connector, rename the new ones.

        Returns the connector to report (the new one after an auth change), else None.
        """
        from zenml.models import ComponentUpdate, ServiceConnectorUpdate

        if not self.component_swaps and self.swap is None:
            return None
        self.undo.clear()  # the stack already uses the new objects; old ones go now
        self.swapping = True
        for old_id, new_id, name in self.component_swaps:
            self.store.delete_stack_component(old_id)
            self.store.update_stack_component(new_id, ComponentUpdate(name=name))
        if self.swap is None or self.spec.connector is None:
            return None
        old_id, new_id = self.swap
        name = self.spec.connector.name
        try:
            self.store.delete_service_connector(old_id)
        except Exception:  # noqa: BLE001 - still used by components outside this stack: keep it, renamed
            aside = f"{name}-replaced-{uuid.uuid4().hex[:6]}"
            self.store.update_service_connector(old_id, ServiceConnectorUpdate(name=aside))
            self.updated.append(f"connector:{aside} (kept: other components still use it)")
        return self.store.update_service_connector(new_id, ServiceConnectorUpdate(name=name))

    def rollback(self, steps: list[tuple[str, Any]] | None = None) -> list[tuple[str, Any]]:
        """Run the undo steps, newest first; returns the ones that failed (oldest first)."""
        failed: list[tuple[str, Any]] = []
        for what, fn in reversed(self.undo if steps is None else steps):
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - each undo step is tried; failures are listed, not raised
                failed.insert(0, (what, fn))
                self.undo_errors[what] = f"{e.__class__.__name__}: {str(e)[:80]}"
        self.undo.clear()
        return failed

    def lookup(self, what: str) -> Any:
        """The object `kind:name` (as `inflight` names it) on the server, or None."""
        from zenml.models import ComponentFilter, FlavorFilter

        kind, _, name = what.partition(":")
        if kind == "secret":
            return find_secret(self.store, name)
        if kind == "connector":
            return find_connector(self.store, name)
        if kind == "stack":
            return find_stack(self.store, name)
        if kind == "flavor":
            return first(self.store.list_flavors(FlavorFilter(name=name)))
        return first(self.store.list_stack_components(ComponentFilter(name=name, type=kind)))

    def delete(self, what: str, obj: Any) -> None:
        kind = what.partition(":")[0]
        delete = {
            "secret": self.store.delete_secret,
            "connector": self.store.delete_service_connector,
            "stack": self.store.delete_stack,
            "flavor": self.store.delete_flavor,
        }.get(kind, self.store.delete_stack_component)
        delete(obj.id)

    def after_interrupt(self) -> str:
        """Ctrl-C (the server answers): the write under way first (a component it created
        still uses the connector), then the undo journal; says what could not be undone."""
        left: list[str] = []
        if self.inflight is not None:
            verb, what = self.inflight
            try:
                obj = self.lookup(what)
                if verb == "created" and obj is not None:
                    self.delete(what, obj)
                    self.created.append(what)  # its answer never came; it is undone too
                elif verb == "updated":
                    left.append(f"{what} may have been updated")
            except Exception as e:  # noqa: BLE001 - reported
                note = _rerun_note(self.inflight)
                left.append(f"{what} may have been {verb} ({e.__class__.__name__}){note}")
        failed = self.rollback()
        left[:0] = [f"could not undo {w} ({self.undo_errors.get(w, '?')})" for w, _ in failed]
        wrote = [*self.created, *self.updated]
        done = f"undid its writes ({', '.join(wrote)})" if wrote else "it had written nothing"
        return f"{done}; left on the server: {'; '.join(left) or 'nothing'}"

    def after_lost_server(self, failed: list[tuple[str, Any]]) -> str:
        """What a run cut off from the server left: checked when the server answers again
        (undo is retried then), else named as unverified. Never claims what it cannot know."""
        from .session import wait_healthy

        inflight = self.inflight
        if self.swapping:
            return (
                "; the stack already used the new objects, so nothing was undone; the old "
                "ones may still be there under their names and a re-run finishes the swap"
            )
        deadline = getattr(self.store, "deadline", None)
        grace = 5.0 if deadline is None else min(5.0, deadline.left())
        try:
            if grace <= 0:
                raise TimeoutError
            wait_healthy(self.store.url, timeout=grace)
        except Exception:  # noqa: BLE001 - not answering is the case we report
            unverified = [what for what, _ in failed]
            if inflight is not None:
                unverified.append(f"{inflight[1]} (may have been {inflight[0]})")
            if not unverified:
                return "; nothing was written before the server stopped answering"
            return (
                "; the server stopped answering, so these may be left on it and could not be "
                f"checked: {', '.join(unverified)}{_rerun_note(inflight)}"
            )
        parts: list[str] = []
        if inflight is not None:
            verb, what = inflight
            if verb == "updated":
                parts.append(f"{what} may have been updated (its answer was lost)")
            else:
                # absent before this run, so if it is there now this run made it: undo it first
                try:
                    obj = self.lookup(what)
                except Exception:  # noqa: BLE001 - reported as unverified
                    parts.append(f"could not check whether {what} was created")
                else:
                    try:
                        if obj is not None:
                            self.delete(what, obj)
                    except Exception:  # noqa: BLE001 - reported
                        parts.append(f"left on the server: {what} (its answer was lost)")
                        parts[-1] += _rerun_note(inflight)
        failed = self.rollback(failed)
        if failed:
            parts.insert(0, f"could not undo: {', '.join(what for what, _ in failed)}")
        if not parts:
            return "; checked once the server answered again: nothing was left behind"
        return "; " + "; ".join(parts)


def apply_stack_spec(
    store: Any, spec: StackSpec, adopt: bool = False, verify: bool | None = None
) -> RegisterResult:
    """Upsert `spec` on the server behind `store` (see module docstring).

    `verify` (default: `spec.connector.verify`) asks the server to verify the connector
    against the cloud after registration; a failed verification is reported, not fatal.
    """
    spec, notes = usable_secret_names(store, spec)
    checked = preflight(store, spec, adopt)
    existing = checked.existing
    a = _Applier(store, spec, checked.connector_type)
    try:
        a.apply_flavors(existing)
        apply_secrets(store, spec, existing, a)
        connector = a.apply_connector(existing)
        comps: dict[str, Any] = {}
        for c in spec.ordered_components():
            comps[c.type] = a.apply_component(c, connector, existing[f"component:{c.type}"])
        stack = a.apply_stack({t: r.id for t, r in comps.items()}, existing["stack"])
        connector = a.finish_swaps() or connector
    except BaseException as e:  # noqa: BLE001 - Ctrl-C too: it undoes its writes
        if isinstance(e, KeyboardInterrupt):
            raise Interrupted(
                f"interrupted while registering stack {spec.name}: {a.after_interrupt()}",
                "re-run the same command: it creates what is missing and keeps what is there",
            ) from None
        failed = a.rollback()
        detail = e.message if isinstance(e, UserError) else str(e).splitlines()[0][:300]
        if _lost_server(e):
            if not isinstance(e, UserError):
                detail = f"the connection to the ZenML server was lost ({e.__class__.__name__})"
            left = a.after_lost_server(failed)
        elif failed:
            left = f"; could not undo: {', '.join(what for what, _ in failed)}"
        else:
            left = "; nothing was left behind"
        raise PhaseError(
            f"registering stack {spec.name} failed: {detail}{left}",
            "fix the cause and re-run; the run is idempotent",
        ) from None

    result = RegisterResult(
        stack=ObjRef(str(stack.id), stack.name),
        components={
            # the spec's names: a replaced component was renamed after `r` was returned
            t: ObjRef(str(r.id), spec.components[t].name, {"flavor": r.flavor_name})
            for t, r in comps.items()
        },
        connector=(
            ObjRef(str(connector.id), connector.name, {"auth_method": connector.auth_method})
            if connector is not None
            else None
        ),
        created=a.created,
        updated=a.updated,
        unchanged=a.unchanged,
    )
    result.log.extend(
        [f"note: {x}" for x in notes]
        + [f"created {x}" for x in a.created]
        + [f"updated {x}" for x in a.updated]
        + [f"unchanged {x}" for x in a.unchanged]
        + a.notes
    )
    do_verify = spec.connector.verify if (verify is None and spec.connector) else bool(verify)
    if do_verify and connector is not None:
        result.verification = verify_connector(store, connector.id)
        result.log.append(f"connector verification: {result.verification['result']}")
    return result


def _rerun_note(inflight: tuple[str, str] | None) -> str:
    """A secret being created when the server died may be a record without its values."""
    verb, what = inflight or ("", "")
    kind, _, name = what.partition(":")
    if verb != "created" or kind != "secret":
        return ""
    return (
        f"; if ZenML kept the record of secret '{name}' without its values, a re-run leaves "
        f"it and registers the secret as '{next_spare_name(name)}'"
    )


def _lost_server(e: BaseException) -> bool:
    """A transport failure: the server may or may not have applied the write under way."""
    import requests

    from ..errors import ServiceUnavailable

    lost = (
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,  # the answer broke off mid-way
        ServiceUnavailable,
    )
    return isinstance(e, lost)
