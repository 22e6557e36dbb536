"""Talking to a ZenML server with explicit credentials.

Nothing here reads or writes the user's global ZenML config or credentials store: `connect`
builds a `RestZenStore` whose login uses the credentials passed in and keeps the token in
memory. `activate_global_client` is the one opt-in exception (`register --activate`).

    Credentials(username=, password=) | Credentials(api_key=) | Credentials.from_env()
    wait_healthy(url, timeout) -> None                    ServiceUnavailable on timeout
    check_server(url, timeout) -> dict                    /info; ServerTooOld if < MIN_SERVER_VERSION
    connect(url, credentials, timeout=300, verify_ssl=True, deadline=None) -> ZenStore
    Deadline(seconds)                                     one command's time budget

With a `Deadline`, the health wait, the login and every request share it: each request gets
the time left as its timeout and at most `ATTEMPTS` tries, and `DeadlineExceeded` ends the
command when it is spent. Without one, each request has `HTTP_TIMEOUT` and the same bounded
tries (ZenML's own session retries up to 5/8/10 times with back-off, minutes on a hung server).
"""

from __future__ import annotations

import http.client
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
from typing import Any

from packaging.version import InvalidVersion, Version

from ..errors import ServiceUnavailable, UserError
from ..polling import poll_until

MIN_SERVER_VERSION = Version(
    "0.90.0"
)  # service-account API key rotation with retain windows, labels


class AuthError(UserError):
    """The server rejected the credentials."""

    exit_code = 1


class ServerTooOld(UserError):
    exit_code = 1


class DeadlineExceeded(ServiceUnavailable):
    """The command's --timeout was spent waiting for the server."""


HTTP_TIMEOUT = 30.0  # seconds per request without a deadline
ATTEMPTS = 3  # tries per request: refused connections, 408/429/502/503/504
RETRY_STATUS = frozenset({408, 429, 502, 503, 504})


class Deadline:
    """A time budget started now; `left()` is what remains of it (never below 0)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + seconds

    def left(self) -> float:
        return max(0.0, self._end - self._clock())

    def expired(self) -> bool:
        return self.left() <= 0

    def error(self, url: str) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"the ZenML server at {url} did not answer within --timeout {self.seconds:g}s",
            "check that the server is up (zenml-gcp-gitops status), or give a larger --timeout",
        )


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
    start = time.monotonic()

    def healthy() -> bool | None:
        nonlocal last
        try:
            left = timeout - (time.monotonic() - start)
            with urllib.request.urlopen(url + "/health", timeout=min(5.0, max(left, 0.5))) as r:
                if r.status == 200:
                    return True
                last = f"HTTP {r.status}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
        except http.client.HTTPException as e:
            # Something answers on the port, but not in HTTP: waiting will not change that.
            raise ServiceUnavailable(
                f"{url} does not speak HTTP (it answered: {type(e).__name__})",
                "check the URL and port: they must be the ZenML server's",
            ) from None
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
            f"the ZenML server at {url} is not healthy after {timeout:.3g}s ({last})",
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


def check_server(
    url: str, timeout: float = 300, deadline: Deadline | None = None
) -> dict[str, Any]:
    """Wait for health, then read `/api/v1/info` and refuse servers older than we support."""
    if deadline is not None:
        timeout = min(timeout, deadline.left())
    wait_healthy(url, timeout)
    try:
        info = _get_json(
            url.rstrip("/") + "/api/v1/info",
            timeout=10 if deadline is None else max(0.1, min(10.0, deadline.left())),
        )
    except (OSError, ValueError, http.client.HTTPException) as e:
        if deadline is not None and deadline.expired():
            raise deadline.error(url) from None
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


def _bounded_adapter(url: str, deadline: Deadline | None, pool_maxsize: int) -> Any:
    """A transport adapter: at most `ATTEMPTS` tries per request, each with the time left.

    It replaces the adapter ZenML's session mounts (urllib3 retries with back-off: minutes
    against a hung server). A retried request is the same prepared request, with the same
    Idempotency-Key header, so the server does not apply a write twice."""
    import requests
    from requests.adapters import HTTPAdapter

    class BoundedAdapter(HTTPAdapter):
        def send(  # type: ignore[override]
            self, request: Any, timeout: Any = None, **kwargs: Any
        ) -> Any:
            asked = timeout or HTTP_TIMEOUT
            for attempt in range(ATTEMPTS):
                timeout = asked
                if deadline is not None:
                    if deadline.expired():
                        raise deadline.error(url)
                    timeout = deadline.left()
                try:
                    resp = super().send(request, timeout=timeout, **kwargs)
                except requests.exceptions.ReadTimeout:
                    if deadline is not None and deadline.expired():
                        raise deadline.error(url) from None
                    raise
                except requests.ConnectionError:
                    if deadline is not None and deadline.expired():
                        raise deadline.error(url) from None
                    if attempt + 1 == ATTEMPTS:
                        raise
                    self.pause(attempt)
                    continue
                if resp.status_code in RETRY_STATUS and attempt + 1 < ATTEMPTS:
                    resp.close()
                    self.pause(attempt)
                    continue
                return resp
            raise AssertionError("unreachable")  # pragma: no cover

        def pause(self, attempt: int) -> None:
            wait = 0.5 * 2**attempt
            time.sleep(wait if deadline is None else min(wait, deadline.left()))

    return BoundedAdapter(max_retries=0, pool_maxsize=pool_maxsize)


@cache
def _store_class() -> Any:
    """A RestZenStore whose token comes from our explicit credentials, kept in memory only,
    and whose requests are bounded (`_bounded_adapter`)."""
    from pydantic import PrivateAttr
    from zenml.login.credentials import APIToken
    from zenml.zen_stores.rest_zen_store import RestZenStore

    class IsolatedRestZenStore(RestZenStore):
        _zgg_credentials: Any = PrivateAttr(default=None)
        _zgg_deadline: Any = PrivateAttr(default=None)
        _zgg_mounted: bool = PrivateAttr(default=False)

        @property
        def deadline(self) -> Deadline | None:
            return self._zgg_deadline  # type: ignore[no-any-return]

        @property
        def session(self) -> Any:
            s = super().session
            if not self._zgg_mounted:
                adapter = _bounded_adapter(
                    self.url, self._zgg_deadline, self.config.connection_pool_size
                )
                s.mount("https://", adapter)
                s.mount("http://", adapter)
                self._zgg_mounted = True
            return s

        def get_or_generate_api_token(self) -> str:
            if self._api_token is None or self._api_token.expired:
                creds: Credentials = self._zgg_credentials
                resp = self.session.post(
                    self.url + "/api/v1/login",
                    data=creds.login_form(),
                    verify=self.config.verify_ssl,
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


def _isolated_store(
    url: str, credentials: Credentials, verify_ssl: bool | str, deadline: Deadline | None
) -> Any:
    """A RestZenStore built without touching the user's ZenML config or credentials.

    ZenML's public constructor cannot do that: `RestZenStoreConfiguration`'s validators
    instantiate `GlobalConfiguration` (which creates the user's config directory and file)
    and move tokens into the global credentials store, and `RestZenStore(...)` logs in
    through that store. So both are built with pydantic's `model_construct` (no validators),
    and the one thing ZenML's own initialisation does, reading the server's info, is done
    with the public `get_store_info()`. Nothing private of ZenML is called."""
    from zenml.zen_stores.rest_zen_store import RestZenStoreConfiguration

    conf = RestZenStoreConfiguration.model_construct(
        url=url, verify_ssl=verify_ssl, http_timeout=int(HTTP_TIMEOUT)
    )
    store = _store_class().model_construct(config=conf)
    store._zgg_credentials = credentials
    store._zgg_deadline = deadline
    store.get_store_info()
    return store


def connect(
    url: str,
    credentials: Credentials,
    timeout: float = 300,
    verify_ssl: bool | str = True,
    deadline: Deadline | None = None,
) -> Any:
    """A logged-in store for `url`; the user's ZenML config and credentials are left alone.

    `timeout` bounds the wait for /health; `deadline`, when given, bounds that wait, the
    login and every later request of the store together."""
    url = url.rstrip("/")
    check_server(url, timeout, deadline)
    try:
        store = _isolated_store(url, credentials, verify_ssl, deadline)
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
