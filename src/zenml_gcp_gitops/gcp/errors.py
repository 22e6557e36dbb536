"""The typed errors of the Google Cloud client libraries (`google.api_core.exceptions`), read
and turned into the one line that names the fix."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..errors import UserError

if TYPE_CHECKING:
    from google.api_core.exceptions import GoogleAPICallError


def error_info(err: GoogleAPICallError) -> tuple[str, dict[str, str]]:
    """The ErrorInfo reason and metadata of an error. Read from `details`: api_core keeps a
    REST error's ErrorInfo as a dict, on which its own `.reason` and `.metadata` fail."""
    for d in err.details or ():
        if isinstance(d, dict):
            if str(d.get("@type", "")).endswith("google.rpc.ErrorInfo"):
                return str(d.get("reason", "")), {
                    str(k): str(v) for k, v in (d.get("metadata") or {}).items()
                }
        elif type(d).__name__ == "ErrorInfo":  # gRPC: the protobuf message
            return str(d.reason), dict(d.metadata)
    return "", {}


def describe(err: GoogleAPICallError) -> str:
    """A client library's error in one line: HTTP code, ErrorInfo reason, message."""
    reason, _ = error_info(err)
    return " ".join(x for x in (str(err.code or ""), reason, err.message) if x)


def is_service_disabled(err: GoogleAPICallError) -> bool:
    """Google's answer when the API called is not enabled in the (quota) project."""
    return error_info(err)[0] == "SERVICE_DISABLED" or "has not been used in project" in err.message


def service_disabled_error(err: GoogleAPICallError, doing: str) -> UserError:
    """The one line for an API that is off: which one, in which project, the command to fix."""
    meta = error_info(err)[1]
    service = meta.get("service", "the API")
    consumer = meta.get("consumer", "").removeprefix("projects/")
    where = f" in project {consumer}" if consumer else ""
    return UserError(
        f"{service} is disabled{where}, so {doing} is not possible",
        f"run `gcloud services enable {service}"
        + (f" --project {consumer}`" if consumer else "`")
        + " (it can take a minute to apply)",
    )


@contextlib.contextmanager
def expired_login_is_one_line() -> Iterator[None]:
    """A revoked or expired ADC login fails on the first call; say so instead of a traceback."""
    from google.auth import exceptions as aexc

    try:
        yield
    except aexc.RefreshError:
        raise UserError(
            "your Application Default Credentials have expired or were revoked",
            "run `gcloud auth application-default login` again",
        ) from None
