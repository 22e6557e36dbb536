"""The real ZenML server app, except that the process dies right after it has handled the
first request matching ZGG_DIE_ON ("METHOD /path/suffix") and before the answer leaves:
the write is committed, the client sees its connection drop (a server killed mid-write).

    uvicorn tests.support.zenml_dying_app:app
"""

from __future__ import annotations

import os
from typing import Any

from zenml.zen_server.zen_server_api import app as zenml_app

_METHOD, _, _SUFFIX = os.environ.get("ZGG_DIE_ON", "").partition(" ")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope.get("type") != "http" or not _METHOD:
        await zenml_app(scope, receive, send)
        return
    hit = scope.get("method") == _METHOD and str(scope.get("path", "")).rstrip("/").endswith(
        _SUFFIX
    )

    async def dying_send(message: dict[str, Any]) -> None:
        if hit and message.get("type") == "http.response.start" and message["status"] < 300:
            os._exit(1)
        await send(message)

    await zenml_app(scope, receive, dying_send)
