"""The real ZenML server app, except that the process dies right after it has handled the
first request matching ZGG_DIE_ON ("METHOD /path/suffix") and before the answer leaves:
the write is committed, the client sees its connection drop (a server killed mid-write).
With ZGG_DROP_ON instead, the server lives on and only that one answer breaks off after
its status line (a connection lost on the way back).

With ZGG_DIE_IN_SECRET_VALUES=1 the process dies inside the first `POST /secrets`, after
ZenML committed the secret's record and before it stored the values (its two commits): the
state a server killed at that moment leaves behind.

With ZGG_HANG_ON ("METHOD /path/suffix") the server commits the first matching request and
never answers it (it writes ZGG_HANG_MARKER first); every other request is served.

    uvicorn tests.support.zenml_dying_app:app
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from zenml.zen_server.zen_server_api import app as zenml_app

_DIE = bool(os.environ.get("ZGG_DIE_ON"))
_HANG = bool(os.environ.get("ZGG_HANG_ON"))
_METHOD, _, _SUFFIX = (
    os.environ.get("ZGG_DIE_ON")
    or os.environ.get("ZGG_HANG_ON")
    or os.environ.get("ZGG_DROP_ON", "")
).partition(" ")
_done: list[bool] = []
_creating_secret: list[bool] = []

if os.environ.get("ZGG_DIE_IN_SECRET_VALUES"):
    from zenml.zen_stores.sql_zen_store import SqlZenStore

    _set_values = SqlZenStore._set_secret_values

    def _die_between_commits(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _creating_secret:
            os._exit(1)
        return _set_values(self, *args, **kwargs)

    SqlZenStore._set_secret_values = _die_between_commits  # type: ignore[method-assign]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope.get("method") == "POST" and str(scope.get("path", "")).rstrip("/").endswith(
        "/secrets"
    ):
        _creating_secret.append(True)
    if scope.get("type") != "http" or not _METHOD:
        await zenml_app(scope, receive, send)
        return
    hit = (
        not _done
        and scope.get("method") == _METHOD
        and str(scope.get("path", "")).rstrip("/").endswith(_SUFFIX)
    )

    async def dying_send(message: dict[str, Any]) -> None:
        if hit and message.get("type") == "http.response.start" and message["status"] < 300:
            if _DIE:
                os._exit(1)
            _done.append(True)
            if _HANG:
                with open(os.environ["ZGG_HANG_MARKER"], "w") as f:
                    f.write(str(scope.get("path")))
                await asyncio.Event().wait()  # committed; the answer never leaves
            await send(message)
            raise RuntimeError("answer dropped after its status line")
        await send(message)

    await zenml_app(scope, receive, dying_send)
