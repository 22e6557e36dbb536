"""Talking to a ZenML server with explicit credentials, and the generic apply/CI engines.

Nothing here reads or writes the user's global ZenML config or credentials store: `connect`
builds a `RestZenStore` whose login uses the credentials passed in and keeps the token in
memory. `activate_global_client` is the one opt-in exception (`register --activate`).

    Credentials(username=, password=) | Credentials(api_key=) | Credentials.from_env()
    wait_healthy(url, timeout) -> None                    ServiceUnavailable on timeout
    check_server(url, timeout) -> dict                    /info; ServerTooOld if < MIN_SERVER_VERSION
    connect(url, credentials, timeout=300, verify_ssl=True) -> ZenStore
    apply_stack_spec(store, spec, adopt=False, verify=None) -> RegisterResult
    stack_status(store, spec) -> dict ;  delete_stack_spec(store, spec) -> list[str]
    ensure_ci_account(store, cfg, *, secrets=None, rotate=False, retain_minutes=60,
                      github_repo=None, zenml_url=None, store_secret=True, gh=None) -> CiResult
    ci_status(store, cfg) -> dict ;  delete_ci_account(store, cfg, secrets=None) -> list[str]

Upserts are by name. Objects we made carry the spec's labels; a same-named object without
them is someone else's and is refused (`ForeignObjectError`) unless `adopt=True`. Everything
is validated before the first write; if a write fails midway, whatever this run created is
deleted again and whatever it updated is put back.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any
from uuid import UUID

from .errors import PhaseError, ServiceUnavailable, UserError

if TYPE_CHECKING:
    from .config import DeploymentConfig
    from .gcp_secrets import SecretAccess
    from .gh import GhClient
    from .stack_spec import ComponentSpec, StackSpec

MIN_SERVER_VERSION = (0, 90, 0)  # service-account API key rotation with retain windows, labels


class AuthError(UserError):
    """The server rejected the credentials."""

    exit_code = 1


class ServerTooOld(UserError):
    exit_code = 1


class ForeignObjectError(UserError):
    exit_code = 1


@dataclass(frozen=True)
class Credentials:
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.api_key and not (self.username and self.password is not None):
            raise UserError(
                "no ZenML credentials given",
                "set ZENML_STORE_API_KEY, or ZENML_STORE_USERNAME and ZENML_STORE_PASSWORD",
            )

    @classmethod
    def from_env(cls) -> Credentials | None:
        key = os.environ.get("ZENML_STORE_API_KEY")
        if key:
            return cls(api_key=key)
        user, pw = os.environ.get("ZENML_STORE_USERNAME"), os.environ.get("ZENML_STORE_PASSWORD")
        if user and pw is not None:
            return cls(username=user, password=pw)
        return None

    def login_form(self) -> dict[str, str]:
        if self.api_key:
            return {"grant_type": "zenml-api-key", "password": self.api_key}
        return {
            "grant_type": "password",
            "username": self.username or "",
            "password": self.password or "",
        }


def _get_json(url: str, timeout: float) -> Any:
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read().decode() or "null")


def wait_healthy(url: str, timeout: float = 300, interval: float = 0.5) -> None:
    """Poll `<url>/health` until it answers 200, or raise `ServiceUnavailable`."""
    url = url.rstrip("/")
    if not re.match(r"^https?://[^/\s]+", url):
        raise UserError(
            f"'{url}' is not a ZenML server URL", "use https://HOST (or http://HOST:PORT)"
        )
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=min(5.0, max(timeout, 0.5))) as r:
                if r.status == 200:
                    return
                last = f"HTTP {r.status}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
        except (OSError, ValueError) as e:
            reason = getattr(e, "reason", None)
            last = str(reason) if reason else e.__class__.__name__
        if time.monotonic() >= deadline:
            raise ServiceUnavailable(
                f"the ZenML server at {url} is not healthy after {timeout:g}s ({last})",
                "check the URL, and that the gitops phase finished (zenml-gcp-gitops status)",
            )
        time.sleep(interval)


def _parse_version(v: str) -> tuple[int, ...]:
    parts: list[int] = []
    for p in v.split("."):
        digits = "".join(ch for ch in p if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def check_server(url: str, timeout: float = 300) -> dict[str, Any]:
    """Wait for health, then read `/api/v1/info` and refuse servers older than we support."""
    wait_healthy(url, timeout)
    try:
        info = _get_json(url.rstrip("/") + "/api/v1/info", timeout=10)
    except (OSError, ValueError) as e:
        raise ServiceUnavailable(
            f"the ZenML server at {url} did not return its info ({e.__class__.__name__})",
            "is this URL a ZenML server?",
        ) from None
    version = str((info or {}).get("version", "0"))
    if _parse_version(version) < MIN_SERVER_VERSION:
        need = ".".join(map(str, MIN_SERVER_VERSION))
        raise ServerTooOld(
            f"the ZenML server at {url} runs {version}; this tool needs {need} or newer",
            "upgrade the server (versions.zenml_chart) and re-run the gitops phase",
        )
    return dict(info)


@cache
def _store_class() -> Any:
    """A RestZenStore whose token comes from our explicit credentials, kept in memory only."""
    import requests
    from pydantic import PrivateAttr
    from zenml.login.credentials import APIToken
    from zenml.zen_stores.rest_zen_store import RestZenStore

    class IsolatedRestZenStore(RestZenStore):
        _zgg_credentials: Any = PrivateAttr(default=None)

        def get_or_generate_api_token(self) -> str:
            if self._api_token is None or self._api_token.expired:
                creds: Credentials = self._zgg_credentials
                resp = requests.post(
                    self.url + "/api/v1/login",
                    data=creds.login_form(),
                    verify=self.config.verify_ssl,
                    timeout=self.config.http_timeout,
                )
                if resp.status_code in (401, 403):
                    what = "API key" if creds.api_key else f"password for user '{creds.username}'"
                    raise AuthError(
                        f"the ZenML server at {self.url} rejected the {what}",
                        "check ZENML_STORE_API_KEY: it may be mistyped, rotated away or deleted"
                        if creds.api_key
                        else "check ZENML_STORE_USERNAME/ZENML_STORE_PASSWORD or the admin secret",
                    )
                if not resp.ok:
                    raise ServiceUnavailable(
                        f"login to the ZenML server at {self.url} failed with HTTP {resp.status_code}"
                    )
                body = resp.json()
                expires_in = body.get("expires_in")
                expires_at = None
                if expires_in:
                    from datetime import timedelta

                    expires_at = datetime.now(UTC) + timedelta(seconds=int(expires_in) - 30)
                self._api_token = APIToken(
                    access_token=body["access_token"], expires_in=expires_in, expires_at=expires_at
                )
            return str(self._api_token.access_token)

        def authenticate(self, force: bool = False) -> None:
            # Unlike the parent, never touches the global credentials store.
            self._api_token = None
            token = self.get_or_generate_api_token()
            self.session.headers.update({"Authorization": "Bearer " + token})

    return IsolatedRestZenStore


def connect(
    url: str, credentials: Credentials, timeout: float = 300, verify_ssl: bool | str = True
) -> Any:
    """A logged-in store for `url`; the user's ZenML config and credentials are left alone."""
    from zenml.zen_stores.rest_zen_store import RestZenStoreConfiguration

    url = url.rstrip("/")
    check_server(url, timeout)
    cls = _store_class()
    # model_construct: the validators would instantiate (and write) the global config
    conf = RestZenStoreConfiguration.model_construct(
        url=url, verify_ssl=verify_ssl, http_timeout=30
    )
    # Build without running __init__'s network calls first, so the credentials are in place.
    store = cls.model_construct(config=conf)
    store._zgg_credentials = credentials
    try:
        store._initialize()
        store.authenticate()
    except UserError:
        raise
    except Exception as e:
        raise ServiceUnavailable(
            f"cannot talk to the ZenML server at {url}: {str(e).splitlines()[0][:200]}"
        ) from None
    return store


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


def _has_labels(obj_labels: dict[str, Any] | None, wanted: dict[str, str]) -> bool:
    have = obj_labels or {}
    return all(str(have.get(k)) == v for k, v in wanted.items())


def _first(page: Any) -> Any:
    items = list(page.items)
    return items[0] if items else None


def _plain(value: Any) -> Any:
    from pydantic import SecretStr

    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value


class _Applier:
    """One apply run: preflight (reads only), then writes with an undo journal."""

    def __init__(self, store: Any, spec: StackSpec, adopt: bool) -> None:
        self.store = store
        self.spec = spec
        self.adopt = adopt
        self.undo: list[tuple[str, Any]] = []  # (description, callable)
        self.created: list[str] = []
        self.updated: list[str] = []
        self.swap: tuple[Any, Any] | None = None  # (old, new) connector ids on an auth change
        self.component_swaps: list[tuple[Any, Any, str]] = []  # (old, new, name): new flavor
        self.unchanged: list[str] = []

    # -- lookups
    def find_secret(self, name: str) -> Any:
        from zenml.models import SecretFilter

        return _first(self.store.list_secrets(SecretFilter(name=name), hydrate=True))

    def find_connector(self, name: str) -> Any:
        from zenml.models import ServiceConnectorFilter

        return _first(
            self.store.list_service_connectors(ServiceConnectorFilter(name=name), hydrate=True)
        )

    def find_component(self, c: ComponentSpec) -> Any:
        from zenml.models import ComponentFilter

        return _first(
            self.store.list_stack_components(
                ComponentFilter(name=c.name, type=c.type), hydrate=True
            )
        )

    def find_stack(self, name: str) -> Any:
        from zenml.models import StackFilter

        return _first(self.store.list_stacks(StackFilter(name=name), hydrate=True))

    # -- preflight
    def preflight(self) -> dict[str, Any]:
        """Check flavors, connector type and ownership before writing anything."""
        from zenml.enums import StackComponentType
        from zenml.models import FlavorFilter

        spec = self.spec
        foreign: list[str] = []
        existing: dict[str, Any] = {}
        custom = self.preflight_flavors(existing)
        for c in spec.ordered_components():
            try:
                StackComponentType(c.type)
            except ValueError:
                raise UserError(f"'{c.type}' is not a ZenML stack component type") from None
            if (c.type, c.flavor) in custom:
                flavors = None  # registered by this run, from this package
            else:
                flavors = self.store.list_flavors(FlavorFilter(name=c.flavor, type=c.type))
            if flavors is not None and not list(flavors.items):
                raise UserError(
                    f"the ZenML server does not know the {c.type} flavor '{c.flavor}'",
                    "the server image needs the matching ZenML integration",
                )
            comp = self.find_component(c)
            existing[f"component:{c.type}"] = comp
            if comp is not None and not _has_labels(comp.labels, spec.labels):
                foreign.append(f"{c.type} '{c.name}'")
            ours = comp is not None and _has_labels(comp.labels, spec.labels)
            if comp is not None and comp.flavor_name != c.flavor and not ours:
                raise ForeignObjectError(
                    f"{c.type} '{c.name}' exists with flavor '{comp.flavor_name}', not '{c.flavor}'",
                    "delete or rename it, or choose another deployment name",
                )
        if spec.connector is not None:
            try:
                self.connector_type = self.store.get_service_connector_type(spec.connector.type)
            except KeyError:
                raise UserError(
                    f"the ZenML server has no '{spec.connector.type}' service connector type",
                    "the server image needs the matching ZenML integration",
                ) from None
            if spec.connector.auth_method not in {
                m.auth_method for m in self.connector_type.auth_methods
            }:
                raise UserError(
                    f"the '{spec.connector.type}' connector has no auth method "
                    f"'{spec.connector.auth_method}'"
                )
            from .stack_spec import SECRET_MARK

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
            self.connector_request()  # validates the configuration against the type, offline
            self.check_implicit_allowed()
            conn = self.find_connector(spec.connector.name)
            existing["connector"] = conn
            if conn is not None and not _has_labels(conn.labels, spec.labels):
                foreign.append(f"service connector '{spec.connector.name}'")
        self.check_secret_refs(existing)
        stack = self.find_stack(spec.name)
        existing["stack"] = stack
        if stack is not None and not _has_labels(stack.labels, spec.labels):
            foreign.append(f"stack '{spec.name}'")
        for s in spec.secrets:
            existing[f"secret:{s.name}"] = self.find_secret(s.name)
        if foreign and not self.adopt:
            raise ForeignObjectError(
                f"not ours (no {LABEL_HINT} labels): {', '.join(foreign)}",
                "pass --adopt to take them over, or choose another deployment name",
            )
        return existing

    def preflight_flavors(self, existing: dict[str, Any]) -> set[tuple[str, str]]:
        """Import each custom flavor here and describe it as `zenml flavor register` does,
        then find it on the server; one of the same name from another source is not ours.

        The import is by module path: ZenML's own loader wants a source root, which a
        process started without a main file (``python -c``, a notebook) does not have."""
        import importlib

        from zenml.enums import StackComponentType
        from zenml.models import FlavorFilter, FlavorRequest
        from zenml.stack import Flavor

        for f in self.spec.flavors:
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
            cur = _first(
                self.store.list_flavors(FlavorFilter(name=f.name, type=f.type), hydrate=True)
            )
            if cur is not None and cur.source != f.source:
                raise ForeignObjectError(
                    f"the ZenML server has another {f.type} flavor '{f.name}' ({cur.source})",
                    f"delete it (`zenml flavor delete {f.name}`) and re-run",
                )
            existing[f"flavor:{f.type}:{f.name}"] = (cur, request)
        return {(f.type, f.name) for f in self.spec.flavors}

    def apply_flavors(self, existing: dict[str, Any]) -> None:
        """Register missing flavors; refresh the schema of ours when this package changed it."""
        from zenml.models import FlavorUpdate

        for f in self.spec.flavors:
            cur, req = existing[f"flavor:{f.type}:{f.name}"]
            if cur is None:
                resp = self.store.create_flavor(req)
                self.undo.append(
                    (f"flavor {f.name}", lambda i=resp.id: self.store.delete_flavor(i))
                )
                self.created.append(f"flavor:{f.name}")
            elif cur.config_schema != req.config_schema:
                self.store.update_flavor(cur.id, FlavorUpdate(config_schema=req.config_schema))
                prev = FlavorUpdate(config_schema=cur.config_schema)
                self.undo.append(
                    (f"flavor {f.name}", lambda i=cur.id, p=prev: self.store.update_flavor(i, p))
                )
                self.updated.append(f"flavor:{f.name}")
            else:
                self.unchanged.append(f"flavor:{f.name}")

    def check_implicit_allowed(self) -> None:
        """An implicit connector only works where the server allows implicit auth methods;
        otherwise it is written and fails on first use. The server's dry-run verification
        (nothing is stored) names the setting when it is off."""
        c = self.spec.connector
        if c is None or c.auth_method != "implicit":
            return
        try:
            res = self.store.verify_service_connector_config(
                self.connector_request(), list_resources=False
            )
            message = str(getattr(res, "error", None) or "")
        except Exception as e:  # other failures (no cloud access here) are not our question
            message = str(e)
        if IMPLICIT_AUTH_SETTING in message:
            raise UserError(
                f"the ZenML server does not allow implicit authentication, which service "
                f"connector '{c.name}' uses",
                f"set {IMPLICIT_AUTH_SETTING}=true on the server (Helm value "
                "zenml.enableImplicitAuthMethods: true), or register with "
                "--connector-auth service-account",
            )

    def check_secret_refs(self, existing: dict[str, Any]) -> None:
        """Every `{{secret.key}}` a component uses must resolve to a non-empty value."""
        ours = {s.name: s for s in self.spec.secrets}
        for c in self.spec.ordered_components():
            for value in c.configuration.values():
                m = _SECRET_REF.fullmatch(value) if isinstance(value, str) else None
                if m is None:
                    continue
                name, key = m.group(1), m.group(2)
                if name in ours:
                    v = ours[name].values.get(key)
                    if v is not None and v.get_secret_value():
                        continue
                elif self.find_secret(name) is not None:
                    continue  # a secret the user manages on the server
                raise UserError(
                    f"{c.type} '{c.name}' references {{{{{name}.{key}}}}}, which has no value",
                    "the MLflow credentials come from MLFLOW_TRACKING_USERNAME/PASSWORD or "
                    "the infra phase's Secret Manager secret",
                )

    def connector_request(self) -> Any:
        from zenml.models import ServiceConnectorRequest

        c = self.spec.connector
        assert c is not None
        req = ServiceConnectorRequest(
            name=c.name,
            connector_type=c.type,
            auth_method=c.auth_method,
            description=f"Managed by zenml-gcp-gitops for stack {self.spec.name}",
            labels=dict(self.spec.labels),
        )
        try:
            req.validate_and_configure_resources(
                connector_type=self.connector_type,
                resource_types=list(c.resource_types) or None,
                configuration={**c.configuration, **c.secrets},
            )
        except (ValueError, TypeError) as e:
            raise UserError(
                f"service connector '{c.name}' configuration is invalid: {str(e).splitlines()[0]}"
            ) from None
        return req

    # -- writes
    def apply_secrets(self, existing: dict[str, Any]) -> None:
        from pydantic import SecretStr
        from zenml.models import SecretRequest, SecretUpdate

        for s in self.spec.secrets:
            cur = existing[f"secret:{s.name}"]
            values = {k: v.get_secret_value() for k, v in s.values.items()}
            if cur is None:
                # not private: the CI service account's runs must resolve the references
                resp = self.store.create_secret(
                    SecretRequest(name=s.name, private=False, values=dict(s.values))
                )
                self.undo.append(
                    (f"secret {s.name}", lambda i=resp.id: self.store.delete_secret(i))
                )
                self.created.append(f"secret:{s.name}")
                continue
            full = self.store.get_secret(cur.id)
            old = {k: _plain(v) for k, v in (full.values or {}).items()}
            if old == values:
                self.unchanged.append(f"secret:{s.name}")
                continue
            # keys we no longer set are removed (None), the rest overwritten
            new: dict[str, Any] = {**dict.fromkeys(old), **s.values}
            self.store.update_secret(cur.id, SecretUpdate(values=new))
            self.undo.append(
                (
                    f"secret {s.name}",
                    lambda i=cur.id, o=old: self.store.update_secret(
                        i,
                        SecretUpdate(
                            values={k: None if v is None else SecretStr(v) for k, v in o.items()}
                        ),
                    ),
                )
            )
            self.updated.append(f"secret:{s.name}")

    def apply_connector(self, existing: dict[str, Any]) -> Any:
        from zenml.models import ServiceConnectorUpdate

        c = self.spec.connector
        if c is None:
            return None
        cur = existing["connector"]
        req = self.connector_request()
        if cur is None:
            resp = self.store.create_service_connector(req)
            self.undo.append(
                (f"connector {c.name}", lambda i=resp.id: self.store.delete_service_connector(i))
            )
            self.created.append(f"connector:{c.name}")
            return resp
        full = self.store.get_service_connector(cur.id, expand_secrets=True)
        old_conf = {k: _plain(v) for k, v in dict(full.configuration or {}).items()}
        want_conf = {k: _plain(v) for k, v in dict(req.configuration).items()}
        same = (
            full.auth_method == c.auth_method
            and old_conf == want_conf  # expand_secrets: secret fields compare by value too
            and _has_labels(full.labels, self.spec.labels)
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
            resp = self.store.create_service_connector(tmp)
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
        resp = self.store.update_service_connector(cur.id, update)
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
            resp = self.store.create_stack_component(
                ComponentRequest(
                    name=name,
                    type=StackComponentType(c.type),
                    flavor=c.flavor,
                    configuration=dict(c.configuration),
                    labels=dict(self.spec.labels),
                    connector=connector_id,
                    connector_resource_id=resource_id,
                )
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
            and _has_labels(full.labels, self.spec.labels)
            and cur_connector == connector_id
            and (full.connector_resource_id or None) == resource_id
        )
        if same:
            self.unchanged.append(f"{c.type}:{c.name}")
            return full
        resp = self.store.update_stack_component(
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
            resp = self.store.create_stack(
                StackRequest(
                    name=self.spec.name,
                    description=f"Managed by zenml-gcp-gitops ({self.spec.name})",
                    components=components,
                    labels=dict(self.spec.labels),
                )
            )
            self.undo.append(
                (f"stack {self.spec.name}", lambda i=resp.id: self.store.delete_stack(i))
            )
            self.created.append(f"stack:{self.spec.name}")
            return resp
        full = cur  # hydrated by the lookup
        have = {str(t): [x.id for x in v] for t, v in full.components.items()}
        want = {str(t): v for t, v in components.items()}
        if have == want and _has_labels(full.labels, self.spec.labels):
            self.unchanged.append(f"stack:{self.spec.name}")
            return full
        resp = self.store.update_stack(
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
        for old_id, new_id, name in self.component_swaps:
            self.store.delete_stack_component(old_id)
            self.store.update_stack_component(new_id, ComponentUpdate(name=name))
        if self.swap is None or self.spec.connector is None:
            return None
        old_id, new_id = self.swap
        name = self.spec.connector.name
        try:
            self.store.delete_service_connector(old_id)
        except Exception:  # still used by components outside this stack: keep it, renamed
            aside = f"{name}-replaced-{uuid.uuid4().hex[:6]}"
            self.store.update_service_connector(old_id, ServiceConnectorUpdate(name=aside))
            self.updated.append(f"connector:{aside} (kept: other components still use it)")
        return self.store.update_service_connector(new_id, ServiceConnectorUpdate(name=name))

    def rollback(self) -> list[str]:
        failed: list[str] = []
        for what, fn in reversed(self.undo):
            try:
                fn()
            except Exception:
                failed.append(what)
        self.undo.clear()
        return failed


LABEL_HINT = "zenml:deployment"
IMPLICIT_AUTH_SETTING = "ZENML_ENABLE_IMPLICIT_AUTH_METHODS"
_SECRET_REF = re.compile(r"\{\{\s*([^.\s}]+)\.([^}\s]+)\s*\}\}")


def apply_stack_spec(
    store: Any, spec: StackSpec, adopt: bool = False, verify: bool | None = None
) -> RegisterResult:
    """Upsert `spec` on the server behind `store` (see module docstring).

    `verify` (default: `spec.connector.verify`) asks the server to verify the connector
    against the cloud after registration; a failed verification is reported, not fatal.
    """
    a = _Applier(store, spec, adopt)
    existing = a.preflight()
    try:
        a.apply_flavors(existing)
        a.apply_secrets(existing)
        connector = a.apply_connector(existing)
        comps: dict[str, Any] = {}
        for c in spec.ordered_components():
            comps[c.type] = a.apply_component(c, connector, existing[f"component:{c.type}"])
        stack = a.apply_stack({t: r.id for t, r in comps.items()}, existing["stack"])
        connector = a.finish_swaps() or connector
    except BaseException as e:
        failed = a.rollback()
        if isinstance(e, KeyboardInterrupt):
            raise
        detail = e.message if isinstance(e, UserError) else str(e).splitlines()[0][:300]
        left = f"; could not undo: {', '.join(failed)}" if failed else "; nothing was left behind"
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
        [f"created {x}" for x in a.created]
        + [f"updated {x}" for x in a.updated]
        + [f"unchanged {x}" for x in a.unchanged]
    )
    do_verify = spec.connector.verify if (verify is None and spec.connector) else bool(verify)
    if do_verify and connector is not None:
        result.verification = verify_connector(store, connector.id)
        result.log.append(f"connector verification: {result.verification['result']}")
    return result


def verify_connector(store: Any, connector_id: Any) -> dict[str, Any]:
    """Ask the server to verify the connector against the cloud (needs the server's egress)."""
    try:
        res = store.verify_service_connector(connector_id, list_resources=False)
    except Exception as e:
        return {
            "result": "failed",
            "error": str(e).splitlines()[0][:300] if str(e) else e.__class__.__name__,
        }
    err = getattr(res, "error", None)
    return {"result": "failed", "error": str(err)[:300]} if err else {"result": "ok"}


def stack_status(store: Any, spec: StackSpec, verify: bool = False) -> dict[str, Any]:
    """Does the stack exist with all its components? Read-only."""
    a = _Applier(store, spec, adopt=True)
    stack = a.find_stack(spec.name)
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
        conn = a.find_connector(spec.connector.name)
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


def delete_stack_spec(store: Any, spec: StackSpec) -> list[str]:
    """Deregister what `apply_stack_spec` made (only objects carrying our labels)."""
    a = _Applier(store, spec, adopt=False)
    removed: list[str] = []
    stack = a.find_stack(spec.name)
    if stack is not None and _has_labels(stack.labels, spec.labels):
        store.delete_stack(stack.id)
        removed.append(f"stack:{spec.name}")
    for c in reversed(spec.ordered_components()):
        comp = a.find_component(c)
        if comp is not None and _has_labels(comp.labels, spec.labels):
            store.delete_stack_component(comp.id)
            removed.append(f"{c.type}:{c.name}")
    if spec.connector is not None:
        conn = a.find_connector(spec.connector.name)
        if conn is not None and _has_labels(conn.labels, spec.labels):
            store.delete_service_connector(conn.id)
            removed.append(f"connector:{spec.connector.name}")
    for s in spec.secrets:
        sec = a.find_secret(s.name)
        if sec is not None:
            store.delete_secret(sec.id)
            removed.append(f"secret:{s.name}")
    return removed


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


# ---------------------------------------------------------------------------------- ci


@dataclass
class CiResult:
    service_account_id: str
    service_account_name: str
    api_key_name: str
    secret_id: str | None
    api_key: str | None = field(default=None, repr=False)
    created_account: bool = False
    created_key: bool = False
    rotated: bool = False
    github: str | None = None
    log: list[str] = field(default_factory=list)

    def public_dict(self, show_key: bool = False) -> dict[str, Any]:
        """The `ci-account --output json` contract; the key only when asked for."""
        out: dict[str, Any] = {
            "service_account": {"id": self.service_account_id, "name": self.service_account_name},
            "api_key_name": self.api_key_name,
            "secret_id": self.secret_id,
        }
        if show_key and self.api_key:
            out["api_key"] = self.api_key
        return out


def _get_sa(store: Any, name: str) -> Any:
    try:
        return store.get_service_account(name)
    except KeyError:
        return None


def _get_key(store: Any, sa_id: Any, name: str) -> Any:
    try:
        return store.get_api_key(sa_id, name)
    except KeyError:
        return None


def ensure_ci_account(
    store: Any,
    cfg: DeploymentConfig,
    *,
    secrets: SecretAccess | None = None,
    rotate: bool = False,
    retain_minutes: int = 60,
    github_repo: str | None = None,
    zenml_url: str | None = None,
    store_secret: bool = True,
    gh: GhClient | None = None,
    stack_id: str | None = None,
) -> CiResult:
    """Service account `<name>-ci` with API key `ci`; a new key only when missing or `rotate`.

    A new key is written to Secret Manager (`cfg.names.secrets["ci_api_key"]`, a new version)
    when `secrets` is given and `store_secret`; with `github_repo` it is also set as the
    repository secret ZENML_STORE_API_KEY (with ZENML_STORE_URL) through `gh`, or the exact
    commands are logged, and ZENML_ACTIVE_STACK_ID with `stack_id`. The key is returned in
    `CiResult.api_key` only when new. Superseded key versions are retired (`key_versions`).
    """
    from zenml.models import APIKeyRequest, APIKeyRotateRequest, ServiceAccountRequest

    n = cfg.names
    sa_name, key_name = n.zenml_ci_account, n.zenml_ci_key
    secret_id = n.secrets["ci_api_key"] if (secrets is not None and store_secret) else None
    if retain_minutes < 0:
        raise UserError("--retain-minutes must be 0 or more")
    log: list[str] = []
    sa = _get_sa(store, sa_name)
    created_account = False
    if sa is None:
        sa = store.create_service_account(
            ServiceAccountRequest(
                name=sa_name,
                full_name=f"CI for the {cfg.name} ZenML stack",
                description="Managed by zenml-gcp-gitops: runs pipelines from CI",
                active=True,
            )
        )
        created_account = True
        log.append(f"created service account {sa_name}")
    elif not sa.active:
        from zenml.models import ServiceAccountUpdate

        sa = store.update_service_account(sa.id, ServiceAccountUpdate(active=True))
        log.append(f"re-activated service account {sa_name}")

    key = _get_key(store, sa.id, key_name)
    new_key: str | None = None
    created_key = rotated = False
    # ZenML shows a key only once: if our stored copy is gone (or was never made, e.g. after
    # --show-key), a rotation is the only way to a key CI can fetch.
    if (
        key is not None
        and not rotate
        and secret_id
        and secrets is not None
        and secrets.read(secret_id) is None
    ):
        rotate = True
        log.append(f"no key stored in Secret Manager {secret_id}; rotating to store one")
    try:
        if key is None:
            resp = store.create_api_key(
                sa.id, APIKeyRequest(name=key_name, description="CI pipelines (zenml-gcp-gitops)")
            )
            new_key, created_key = resp.key, True
            log.append(f"created API key {key_name}")
        elif rotate:
            resp = store.rotate_api_key(
                sa.id, key_name, APIKeyRotateRequest(retain_period_minutes=retain_minutes)
            )
            new_key, rotated = resp.key, True
            log.append(
                f"rotated API key {key_name}; the old key keeps working for {retain_minutes} min"
            )
        else:
            log.append(f"kept API key {key_name} (pass --rotate for a new one)")
        if new_key and secret_id and secrets is not None:
            version = secrets.add_version(secret_id, new_key)
            log.append(
                f"stored the key in Secret Manager {secret_id} ({version.rsplit('/', 1)[-1]})"
            )
    except BaseException as e:
        # A key nobody can read again is useless: undo a fresh account or key rather than
        # leave one behind, so a re-run starts clean.
        if created_account:
            _delete_sa_quietly(store, sa.id, key_name)
        elif created_key:
            with contextlib.suppress(Exception):
                store.delete_api_key(sa.id, key_name)
        if rotated and isinstance(e, UserError):
            raise UserError(
                f"rotated the API key but could not store the new one: {e.message}",
                f"the old key keeps working for {retain_minutes} min; fix the access and run "
                "`zenml-gcp-gitops ci-account rotate` again",
            ) from None
        raise

    if secrets is not None:
        log.extend(
            retire_key_versions(store, sa.id, key_name, secrets, n.secrets["ci_api_key"]).log
        )
    result = CiResult(
        service_account_id=str(sa.id),
        service_account_name=sa.name,
        api_key_name=key_name,
        secret_id=secret_id,
        api_key=new_key,
        created_account=created_account,
        created_key=created_key,
        rotated=rotated,
        log=log,
    )
    if github_repo:
        from .gh import set_repo_secrets

        key_for_gh = new_key
        if key_for_gh is None and secrets is not None:
            key_for_gh = secrets.read(n.secrets["ci_api_key"])
        result.github = set_repo_secrets(
            github_repo,
            zenml_url or "",
            key_for_gh,
            secret_id=n.secrets["ci_api_key"],
            project=cfg.project,
            gh=gh,
            log=log,
            stack_id=stack_id,
        )
    return result


def _delete_sa_quietly(store: Any, sa_id: Any, key_name: str) -> None:
    try:
        if _get_key(store, sa_id, key_name) is not None:
            store.delete_api_key(sa_id, key_name)
        store.delete_service_account(sa_id)
    except Exception:
        pass


def retire_key_versions(
    store: Any, sa_id: Any, key_name: str, secrets: Any, secret_id: str, now: Any = None
) -> Any:
    """Disable/destroy stored key versions whose key ZenML no longer accepts (`key_versions`)."""
    from .key_versions import enforce

    key = _get_key(store, sa_id, key_name)
    rotated = key.last_rotated if key is not None else None
    retain = key.retain_period_minutes if key is not None else 0
    return enforce(secrets, secret_id, rotated, retain, now=now)


def find_stack_id(store: Any, name: str) -> str | None:
    from zenml.models import StackFilter

    stack = _first(store.list_stacks(StackFilter(name=name)))
    return str(stack.id) if stack is not None else None


def ci_status(
    store: Any, cfg: DeploymentConfig, secrets: Any = None, now: datetime | None = None
) -> dict[str, Any]:
    """Account and key state, and the key's age. With `secrets`, also retires the stored key
    versions that are due and reports each version's state (`key_versions`)."""
    n = cfg.names
    sa = _get_sa(store, n.zenml_ci_account)
    if sa is None:
        return {"service_account": None, "api_key": None, "healthy": False}
    key = _get_key(store, sa.id, n.zenml_ci_key)
    out: dict[str, Any] = {
        "service_account": {"id": str(sa.id), "name": sa.name, "active": bool(sa.active)},
        "api_key": None,
        "secret_id": n.secrets["ci_api_key"],
    }
    if key is not None:
        since = key.last_rotated or key.created
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        out["api_key"] = {
            "name": key.name,
            "active": bool(key.active),
            "age_days": round((datetime.now(UTC) - since).total_seconds() / 86400, 2),
            "last_login": key.last_login.isoformat() if key.last_login else None,
            "last_rotated": key.last_rotated.isoformat() if key.last_rotated else None,
        }
    out["healthy"] = bool(sa.active and key is not None and key.active)
    if secrets is not None:
        kv = retire_key_versions(
            store, sa.id, n.zenml_ci_key, secrets, n.secrets["ci_api_key"], now=now
        )
        out["key_versions"] = kv.versions
        out["key_versions_log"] = [*kv.log, kv.summary()]
    return out


def delete_ci_account(
    store: Any, cfg: DeploymentConfig, secrets: SecretAccess | None = None
) -> list[str]:
    """Delete the API keys, the service account and the stored key versions."""
    from zenml.models import APIKeyFilter

    n = cfg.names
    removed: list[str] = []
    sa = _get_sa(store, n.zenml_ci_account)
    if sa is not None:
        for k in list(store.list_api_keys(sa.id, APIKeyFilter(), hydrate=True).items):
            store.delete_api_key(sa.id, k.id)
            removed.append(f"api_key:{k.name}")
        store.delete_service_account(sa.id)
        removed.append(f"service_account:{sa.name}")
    if secrets is not None:
        count = secrets.destroy_versions(n.secrets["ci_api_key"])
        if count:
            removed.append(f"secret_versions:{n.secrets['ci_api_key']}:{count}")
    return removed


def activate_global_client(url: str, credentials: Credentials, stack_name: str) -> None:
    """Opt-in (`--activate`): log the user's global ZenML client in and set the stack active."""
    from zenml.client import Client
    from zenml.config.global_config import GlobalConfiguration
    from zenml.login.credentials_store import get_credentials_store
    from zenml.zen_stores.rest_zen_store import RestZenStoreConfiguration

    store_creds = get_credentials_store()
    if credentials.api_key:
        store_creds.set_api_key(url, credentials.api_key)
    else:
        store_creds.set_password(url, credentials.username or "", credentials.password or "")
    GlobalConfiguration().set_store(RestZenStoreConfiguration(url=url))
    Client().activate_stack(stack_name)
