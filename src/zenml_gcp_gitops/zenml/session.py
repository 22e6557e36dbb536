"""Talking to a ZenML server with explicit credentials.

Nothing here reads or writes the user's global ZenML config or credentials store: `connect`
builds a `RestZenStore` whose login uses the credentials passed in and keeps the token in
memory. `activate_global_client` is the one opt-in exception (`register --activate`).

    Credentials(username=, password=) | Credentials(api_key=) | Credentials.from_env()
    wait_healthy(url, timeout) -> None                    ServiceUnavailable on timeout
    check_server(url, timeout) -> dict                    /info; ServerTooOld if < MIN_SERVER_VERSION
    connect(url, credentials, timeout=300, verify_ssl=True) -> ZenStore
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from packaging.version import InvalidVersion, Version

from ..errors import ServiceUnavailable, UserError
from ..polling import poll_until

if TYPE_CHECKING:
    pass


MIN_SERVER_VERSION = Version(
    "0.90.0"
)  # service-account API key rotation with retain windows, labels


class AuthError(UserError):
    """The server rejected the credentials."""

    exit_code = 1


class ServerTooOld(UserError):
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


def wait_healthy(
    url: str,
    timeout: float = 300,
    interval: float = 0.5,
    sleep: Callable[[float], object] = time.sleep,
) -> None:
    """Poll `<url>/health` until it answers 200, or raise `ServiceUnavailable`."""
    url = url.rstrip("/")
    if not re.match(r"^https?://[^/\s]+", url):
        raise UserError(
            f"'{url}' is not a ZenML server URL", "use https://HOST (or http://HOST:PORT)"
        )
    last = "no answer"

    def healthy() -> bool | None:
        nonlocal last
        try:
            with urllib.request.urlopen(url + "/health", timeout=min(5.0, max(timeout, 0.5))) as r:
                if r.status == 200:
                    return True
                last = f"HTTP {r.status}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
        except (OSError, ValueError) as e:
            reason = getattr(e, "reason", None)
            last = str(reason) if reason else e.__class__.__name__
        return None

    poll_until(
        healthy,
        timeout=timeout,
        interval=interval,
        sleep=sleep,
        on_timeout=lambda: ServiceUnavailable(
            f"the ZenML server at {url} is not healthy after {timeout:g}s ({last})",
            "check the URL, and that the gitops phase finished (zenml-gcp-gitops status)",
        ),
    )


def _release(v: str) -> tuple[int, ...]:
    """A server version's release numbers (a dev or rc build counts as its release);
    anything unparsable counts as too old."""
    try:
        return Version(v).release
    except InvalidVersion:
        return (0,)


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
    if _release(version) < MIN_SERVER_VERSION.release:
        raise ServerTooOld(
            f"the ZenML server at {url} runs {version}; this tool needs {MIN_SERVER_VERSION} or newer",
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
    except Exception as e:  # noqa: BLE001 - any client/transport failure is one "cannot talk" line
        raise ServiceUnavailable(
            f"cannot talk to the ZenML server at {url}: {str(e).splitlines()[0][:200]}"
        ) from None
    return store


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
