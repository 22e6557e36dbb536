"""Errors a user can hit. The CLI catches `UserError` in one place and prints one line."""

from __future__ import annotations


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
