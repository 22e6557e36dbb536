"""The reads of the stack-spec engine: the checks an apply run makes before its first
write, the lookups, and the status. Nothing here changes the server.

    preflight(store, spec, adopt) -> Checked   flavors, component and connector types, the
        connector's auth settings, secret references and ownership of every same-named object
    connector_request(spec, connector_type)    the connector as ZenML would store it, validated
    find_connector / find_component / find_stack(store, ...) -> the server's object, or None
    stack_status(store, spec, verify=False) -> dict ;  verify_connector(store, connector_id)
    find_stack_id(store, name) ;  count_objects(store)

A failed check raises `UserError` (or `ForeignObjectError` for an object that is someone
else's) before anything is written, so a refused run leaves the server as it was. The
writes, with their undo journal and rollback, are in `apply.py`, which re-exports the
public names here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from .flavor_owner import ours
from .secrets import check_secret_refs, find_secret, first, has_labels, secret_is_ours

if TYPE_CHECKING:
    from .stack_spec import ComponentSpec, StackSpec

LABEL_HINT = "zenml:deployment"
IMPLICIT_AUTH_SETTING = "ZENML_ENABLE_IMPLICIT_AUTH_METHODS"


class ForeignObjectError(UserError):
    exit_code = 1


@dataclass
class Checked:
    """What preflight found: the objects there now (by `kind:name`, flavors with the request
    to register them) and the server's connector type (None without a connector)."""

    existing: dict[str, Any]
    connector_type: Any = None


# -- lookups
def find_connector(store: Any, name: str) -> Any:
    from zenml.models import ServiceConnectorFilter

    return first(store.list_service_connectors(ServiceConnectorFilter(name=name), hydrate=True))


def find_component(store: Any, c: ComponentSpec) -> Any:
    from zenml.models import ComponentFilter

    return first(
        store.list_stack_components(ComponentFilter(name=c.name, type=c.type), hydrate=True)
    )


def find_stack(store: Any, name: str) -> Any:
    from zenml.models import StackFilter

    return first(store.list_stacks(StackFilter(name=name), hydrate=True))


# -- preflight
def preflight(store: Any, spec: StackSpec, adopt: bool) -> Checked:
    """Check flavors, connector type and ownership before writing anything."""
    from zenml.enums import StackComponentType
    from zenml.models import FlavorFilter

    foreign: list[str] = []
    existing: dict[str, Any] = {}
    custom = preflight_flavors(store, spec, existing)
    connector_type = None
    for c in spec.ordered_components():
        try:
            StackComponentType(c.type)
        except ValueError:
            raise UserError(f"'{c.type}' is not a ZenML stack component type") from None
        if (c.type, c.flavor) in custom:
            flavors = None  # registered by this run, from this package
        else:
            flavors = store.list_flavors(FlavorFilter(name=c.flavor, type=c.type))
        if flavors is not None and not list(flavors.items):
            raise UserError(
                f"the ZenML server does not know the {c.type} flavor '{c.flavor}'",
                "the server image needs the matching ZenML integration",
            )
        comp = find_component(store, c)
        existing[f"component:{c.type}"] = comp
        if comp is not None and not has_labels(comp.labels, spec.labels):
            foreign.append(f"{c.type} '{c.name}'")
        ours = comp is not None and has_labels(comp.labels, spec.labels)
        if comp is not None and comp.flavor_name != c.flavor and not ours:
            raise ForeignObjectError(
                f"{c.type} '{c.name}' exists with flavor '{comp.flavor_name}', not '{c.flavor}'",
                "delete or rename it, or choose another deployment name",
            )
    if spec.connector is not None:
        try:
            connector_type = store.get_service_connector_type(spec.connector.type)
        except KeyError:
            raise UserError(
                f"the ZenML server has no '{spec.connector.type}' service connector type",
                "the server image needs the matching ZenML integration",
            ) from None
        if spec.connector.auth_method not in {m.auth_method for m in connector_type.auth_methods}:
            raise UserError(
                f"the '{spec.connector.type}' connector has no auth method "
                f"'{spec.connector.auth_method}'"
            )
        from ..config import SECRET_MARK

        empty = [
            k
            for k, v in spec.connector.secrets.items()
            if v.get_secret_value() in ("", SECRET_MARK)  # a plan masks it as "[secret]"
        ]
        if empty:
            raise UserError(
                f"service connector '{spec.connector.name}' has no value for {', '.join(empty)}",
                "connector_auth=service-account needs pipelines_sa_key in the infra outputs "
                "(plans mask it; re-run infra with that setting), or use implicit auth",
            )
        connector_request(spec, connector_type)  # validates the configuration, offline
        check_auth_config(spec)
        check_implicit_allowed(store, spec, connector_type)
        conn = find_connector(store, spec.connector.name)
        existing["connector"] = conn
        if conn is not None and not has_labels(conn.labels, spec.labels):
            foreign.append(f"service connector '{spec.connector.name}'")
    check_secret_refs(store, spec)
    stack = find_stack(store, spec.name)
    existing["stack"] = stack
    if stack is not None and not has_labels(stack.labels, spec.labels):
        foreign.append(f"stack '{spec.name}'")
    comps = [existing[f"component:{c.type}"] for c in spec.ordered_components()]
    for s in spec.secrets:
        sec = existing[f"secret:{s.name}"] = find_secret(store, s.name)
        if sec is not None and not secret_is_ours(store, spec, sec, comps):
            foreign.append(f"secret '{s.name}'")
    if foreign and not adopt:
        raise ForeignObjectError(
            f"not made by this deployment (no {LABEL_HINT} labels): {', '.join(foreign)}",
            "pass --adopt to take them over, or choose another deployment name",
        )
    return Checked(existing, connector_type)


def preflight_flavors(
    store: Any, spec: StackSpec, existing: dict[str, Any]
) -> set[tuple[str, str]]:
    """Import each custom flavor here and describe it as `zenml flavor register` does,
    then find it on the server; one of the same name from another source is not ours.

    The import is by module path: ZenML's own loader wants a source root, which a
    process started without a main file (``python -c``, a notebook) does not have."""
    import importlib

    from zenml.enums import StackComponentType
    from zenml.models import FlavorFilter, FlavorRequest
    from zenml.stack import Flavor

    for f in spec.flavors:
        module, _, attr = f.source.rpartition(".")
        try:
            flavor = getattr(importlib.import_module(module), attr)()
        except (ImportError, AttributeError, TypeError) as e:
            raise UserError(
                f"the {f.type} flavor {f.source} cannot be loaded: {str(e).splitlines()[0]}",
                "reinstall zenml-gcp-gitops with its dependencies",
            ) from None
        if not isinstance(flavor, Flavor) or flavor.type != StackComponentType(f.type):
            raise UserError(f"{f.source} is not a {f.type} flavor")
        needs = flavor.service_connector_requirements
        request = FlavorRequest(
            name=flavor.name,
            display_name=flavor.display_name,
            type=flavor.type,
            source=f.source,
            config_schema=flavor.config_schema,
            connector_type=needs.connector_type if needs else None,
            connector_resource_type=needs.resource_type if needs else None,
            connector_resource_id_attr=needs.resource_id_attr if needs else None,
            integration="custom",
            logo_url=flavor.logo_url,
            docs_url=flavor.docs_url,
            sdk_docs_url=flavor.sdk_docs_url,
            is_custom=True,
        )
        cur = first(store.list_flavors(FlavorFilter(name=f.name, type=f.type), hydrate=True))
        if cur is not None and cur.source != f.source and not ours(cur.source):
            raise ForeignObjectError(
                f"the ZenML server has another {f.type} flavor '{f.name}' ({cur.source})",
                f"delete it (`zenml flavor delete {f.name}`) and re-run",
            )
        existing[f"flavor:{f.type}:{f.name}"] = (cur, request)
    return {(f.type, f.name) for f in spec.flavors}


def check_implicit_allowed(store: Any, spec: StackSpec, connector_type: Any) -> None:
    """An implicit connector only works where the server allows implicit auth methods;
    otherwise it is written and fails on first use. The server's dry-run verification
    (nothing is stored) names the setting when it is off."""
    c = spec.connector
    if c is None or c.auth_method != "implicit":
        return
    try:
        res = store.verify_service_connector_config(
            connector_request(spec, connector_type), list_resources=False
        )
        message = str(getattr(res, "error", None) or "")
    except Exception as e:  # noqa: BLE001 - other failures (no cloud access here) are not our question
        message = str(e)
    if IMPLICIT_AUTH_SETTING in message:
        raise UserError(
            f"the ZenML server does not allow implicit authentication, which service "
            f"connector '{c.name}' uses",
            f"set {IMPLICIT_AUTH_SETTING}=true on the server (Helm value "
            "zenml.enableImplicitAuthMethods: true), or register with "
            "--connector-auth service-account",
        )


def check_auth_config(spec: StackSpec) -> None:
    """Load the connector's auth settings into the connector's own config class, as every
    client does on first use. The server stores what matches the JSON schema, so e.g. a
    service-account key without the fields Google's key files carry would be written and
    then fail in every pipeline. Skipped where this client lacks the connector type."""
    from pydantic import ValidationError
    from zenml.service_connectors.service_connector_registry import (
        service_connector_registry,
    )

    from ..config import SECRET_MARK

    c = spec.connector
    assert c is not None
    try:
        local = service_connector_registry.get_service_connector_type(c.type)
    except KeyError:
        return  # the server's schema check stands alone
    method = local.auth_method_dict.get(c.auth_method)
    if method is None or method.config_class is None:
        return
    secrets = {k: v.get_secret_value() for k, v in c.secrets.items()}
    try:
        method.config_class(**{**c.configuration, **secrets})
    except ValidationError as e:
        why = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'configuration'}: {err['msg']}"
            for err in e.errors(include_input=False, include_url=False)
        )
        for value in secrets.values():  # a message quoting a secret never leaves here
            if len(value) >= 4:
                why = why.replace(value, SECRET_MARK)
        hint = None
        if "service_account_json" in secrets:
            hint = (
                "connector_auth=service-account needs the pipelines account's JSON key "
                "as Google issues it (pipelines_sa_key in the infra outputs)"
            )
        raise UserError(
            f"service connector '{c.name}' configuration is invalid: {why}", hint
        ) from None


def connector_request(spec: StackSpec, connector_type: Any) -> Any:
    """The connector's create request, its configuration validated against the type (offline)."""
    from zenml.models import ServiceConnectorRequest

    c = spec.connector
    assert c is not None
    req = ServiceConnectorRequest(
        name=c.name,
        connector_type=c.type,
        auth_method=c.auth_method,
        description=f"Managed by zenml-gcp-gitops for stack {spec.name}",
        labels=dict(spec.labels),
    )
    try:
        req.validate_and_configure_resources(
            connector_type=connector_type,
            resource_types=list(c.resource_types) or None,
            configuration={**c.configuration, **c.secrets},
        )
    except (ValueError, TypeError) as e:
        raise UserError(
            f"service connector '{c.name}' configuration is invalid: {str(e).splitlines()[0]}"
        ) from None
    return req


# -- status
def verify_connector(store: Any, connector_id: Any) -> dict[str, Any]:
    """Ask the server to verify the connector against the cloud (needs the server's egress)."""
    try:
        res = store.verify_service_connector(connector_id, list_resources=False)
    except Exception as e:  # noqa: BLE001 - a failed verification is reported, never fatal
        return {
            "result": "failed",
            "error": str(e).splitlines()[0][:300] if str(e) else e.__class__.__name__,
        }
    err = getattr(res, "error", None)
    return {"result": "failed", "error": str(err)[:300]} if err else {"result": "ok"}


def stack_status(store: Any, spec: StackSpec, verify: bool = False) -> dict[str, Any]:
    """Does the stack exist with all its components? Read-only."""
    stack = find_stack(store, spec.name)
    out: dict[str, Any] = {"stack": None, "components": {}, "missing": [], "connector": None}
    if stack is None:
        out["missing"].append(f"stack:{spec.name}")
    else:
        full = store.get_stack(stack.id)
        out["stack"] = {"id": str(full.id), "name": full.name}
        have = {str(t): v[0] for t, v in full.components.items() if v}
        for c in spec.ordered_components():
            got = have.get(c.type)
            if got is None or got.name != c.name:
                out["missing"].append(f"{c.type}:{c.name}")
            else:
                out["components"][c.type] = {
                    "id": str(got.id),
                    "name": got.name,
                    "flavor": got.flavor_name,
                }
    if spec.connector is not None:
        conn = find_connector(store, spec.connector.name)
        if conn is None:
            out["missing"].append(f"connector:{spec.connector.name}")
        else:
            out["connector"] = {
                "id": str(conn.id),
                "name": conn.name,
                "auth_method": conn.auth_method,
            }
            if verify:
                out["connector"]["verification"] = verify_connector(store, conn.id)
    out["healthy"] = not out["missing"]
    return out


def find_stack_id(store: Any, name: str) -> str | None:
    from zenml.models import StackFilter

    stack = first(store.list_stacks(StackFilter(name=name)))
    return str(stack.id) if stack is not None else None


def count_objects(store: Any) -> dict[str, int]:
    """Totals of everything register/ci can create; tests compare them before and after."""
    from zenml.models import (
        ComponentFilter,
        SecretFilter,
        ServiceAccountFilter,
        ServiceConnectorFilter,
        StackFilter,
    )

    return {
        "stacks": store.list_stacks(StackFilter()).total,
        "components": store.list_stack_components(ComponentFilter()).total,
        "connectors": store.list_service_connectors(ServiceConnectorFilter()).total,
        "secrets": store.list_secrets(SecretFilter()).total,
        "service_accounts": store.list_service_accounts(ServiceAccountFilter()).total,
    }
