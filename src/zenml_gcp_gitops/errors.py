"""Errors a user can hit. The CLI catches `UserError` in one place and prints one line;
`echo` is how a value the user gave shows in such a line."""

from __future__ import annotations

import unicodedata


class UserError(Exception):
    """An error the user can fix; `hint` says how. Exit code 2 for bad input, 1 otherwise."""

    exit_code = 1
    log_file: str | None = None  # where the full detail is, when there is more than a line
    owned_by_another_run = False  # the engine leaves the record to the run that owns it

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(UserError):
    """Invalid configuration: nothing has been created."""

    exit_code = 2


class PhaseError(UserError):
    """A deploy phase failed; the deployment record says where to resume."""


class Interrupted(PhaseError):
    """Ctrl-C: the phase stopped cleanly and was recorded; re-running resumes."""

    exit_code = 130


class ServiceUnavailable(UserError):
    """A server (ZenML, MLflow, Kubernetes) did not answer in time."""


class MissingCredentials(UserError):
    """No Application Default Credentials: checked before anything talks to Google."""

    exit_code = 2

    def __init__(self) -> None:
        super().__init__(
            "no Google Application Default Credentials found",
            "run `gcloud auth application-default login` (or set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file)",
        )


def known_error(exc: BaseException) -> UserError | None:
    """Third-party errors with a known cause, as one line (matched by class, not imported)."""
    name = f"{type(exc).__module__}.{type(exc).__name__}"
    if name == "google.auth.exceptions.DefaultCredentialsError":
        return MissingCredentials()
    import http.client

    if isinstance(exc, http.client.HTTPException):
        return UserError(
            f"a server answered with something that is not HTTP ({type(exc).__name__}: "
            f"{_short(str(exc))})",
            "check the URL: it must point at the server's HTTP port",
        )
    if type(exc).__name__ == "StackAlreadyExistsError":
        # Two first deploys raced to create the Pulumi stack: this one lost.
        err = UserError(
            "another deploy of this deployment is running: it created the Pulumi stack first",
            "wait for it to finish (`zenml-gcp-gitops status` shows its progress), then "
            "re-run to converge",
        )
        err.owned_by_another_run = True
        return err
    return None


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text)} chars)"


ECHO_MAX = 80  # characters of a bad value shown in an error line


def echo_path(path: object, limit: int = 160) -> str:
    """A path as an error line shows it: like `echo`, without quotes."""
    return echo(str(path), limit)[1:-1]


def echo(value: object, limit: int = ECHO_MAX) -> str:
    """A value as an error line shows it: quoted, control characters escaped, cut to `limit`."""
    text = value if isinstance(value, str) else repr(value)
    text = "".join(
        c if unicodedata.category(c) not in _UNPRINTABLE else f"\\u{ord(c):04x}" for c in text
    )
    if len(text) > limit:
        text = f"{text[: limit - 1]}… ({len(value) if isinstance(value, str) else len(text)} chars)"
    return f"'{text}'"


# Cc: control characters (newline, ESC, NUL...), Cs: lone surrogates, Cf: invisible format
# characters such as bidirectional overrides.
_UNPRINTABLE = frozenset({"Cc", "Cs", "Cf"})
