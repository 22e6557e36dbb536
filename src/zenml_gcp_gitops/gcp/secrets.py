"""Secret Manager access behind a tiny interface, so tests swap in `tests/fakes/gcp_secrets.py`.

    SecretAccess.read(secret_id) -> str | None          latest enabled version, None if none
    SecretAccess.add_version(secret_id, value) -> str   creates the secret when missing
    SecretAccess.destroy_versions(secret_id) -> int     destroys every enabled version
    GcpSecretManager.versions(secret_id) -> list[SecretVersion]   number, state, create time
    GcpSecretManager.disable_version / destroy_version(secret_id, number)

Values are never logged; only IDs and version names leave these methods.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..errors import UserError


class SecretAccess(Protocol):
    def read(self, secret_id: str) -> str | None: ...
    def add_version(self, secret_id: str, value: str) -> str: ...
    def destroy_versions(self, secret_id: str) -> int: ...


def _precondition_failed(e: Exception) -> bool:
    """FAILED_PRECONDITION (a version that is disabled or destroyed). gRPC raises
    FailedPrecondition; the REST transport raises BadRequest (HTTP 400) with that status."""
    from google.api_core import exceptions as gexc

    if isinstance(e, gexc.FailedPrecondition):
        return True
    if not isinstance(e, gexc.BadRequest) or e.response is None:
        return False
    try:
        status = e.response.json().get("error", {}).get("status")
    except (ValueError, AttributeError):
        return False
    return bool(status == "FAILED_PRECONDITION")


class GcpSecretManager:
    """google-cloud-secret-manager with Application Default Credentials, over its REST
    transport: an expired login fails at once (gRPC retries UNAVAILABLE for minutes), and the
    tests run this class against a loopback HTTP server that answers as the API does."""

    def __init__(
        self,
        project: str,
        labels: dict[str, str] | None = None,
        *,
        endpoint: str | None = None,
        credentials: Any = None,
    ) -> None:
        self.project = project
        self.labels = labels or {}
        self._endpoint = endpoint
        self._credentials = credentials
        self._client: Any = None

    def _c(self) -> Any:
        if self._client is None:
            import google.cloud.secretmanager as secretmanager

            try:
                options = {"api_endpoint": self._endpoint} if self._endpoint else None
                self._client = secretmanager.SecretManagerServiceClient(
                    credentials=self._credentials, transport="rest", client_options=options
                )
            except Exception as e:  # noqa: BLE001 - DefaultCredentialsError and friends
                raise UserError(
                    f"cannot reach Secret Manager: {e.__class__.__name__}",
                    "run `gcloud auth application-default login`",
                ) from None
        return self._client

    def _name(self, secret_id: str) -> str:
        return f"projects/{self.project}/secrets/{secret_id}"

    def read(self, secret_id: str) -> str | None:
        from google.api_core import exceptions as gexc

        try:
            resp = self._c().access_secret_version(name=self._name(secret_id) + "/versions/latest")
        except gexc.NotFound:
            return None
        except gexc.GoogleAPICallError as e:
            if _precondition_failed(e):  # `latest`, the newest version, is not ENABLED
                return None
            raise UserError(
                f"cannot read secret {secret_id}: {e.__class__.__name__}",
                "check you have roles/secretmanager.secretAccessor on the project",
            ) from None
        return str(resp.payload.data.decode())

    def add_version(self, secret_id: str, value: str) -> str:
        from google.api_core import exceptions as gexc

        client = self._c()
        try:
            client.create_secret(
                parent=f"projects/{self.project}",
                secret_id=secret_id,
                secret={"replication": {"automatic": {}}, "labels": self.labels},
            )
        except gexc.Conflict:  # AlreadyExists over gRPC, HTTP 409 over REST
            pass
        except gexc.GoogleAPICallError as e:
            raise UserError(
                f"cannot create secret {secret_id}: {e.__class__.__name__}",
                "check you have roles/secretmanager.admin on the project",
            ) from None
        try:
            version = client.add_secret_version(
                parent=self._name(secret_id), payload={"data": value.encode()}
            )
        except gexc.GoogleAPICallError as e:
            raise UserError(
                f"cannot add a version to secret {secret_id}: {e.__class__.__name__}",
                "check you have roles/secretmanager.secretVersionAdder on the secret",
            ) from None
        return str(version.name)

    def destroy_versions(self, secret_id: str) -> int:
        from google.api_core import exceptions as gexc

        client = self._c()
        count = 0
        try:
            # `filter` is no flattened argument of the client: it goes in the request
            for v in client.list_secret_versions(
                request={"parent": self._name(secret_id), "filter": "state:ENABLED"}
            ):
                client.destroy_secret_version(name=v.name)
                count += 1
        except gexc.NotFound:
            return 0
        return count

    def versions(self, secret_id: str) -> list[Any]:
        from google.api_core import exceptions as gexc

        from .key_versions import SecretVersion

        try:
            listed = list(self._c().list_secret_versions(parent=self._name(secret_id)))
        except gexc.NotFound:
            return []
        except gexc.GoogleAPICallError as e:
            raise UserError(
                f"cannot list the versions of secret {secret_id}: {e.__class__.__name__}",
                "check you have roles/secretmanager.viewer on the project",
            ) from None
        return [
            SecretVersion(int(v.name.rsplit("/", 1)[-1]), v.state.name, v.create_time)
            for v in listed
        ]

    def _version_call(self, method: str, secret_id: str, number: int) -> None:
        from google.api_core import exceptions as gexc

        try:
            getattr(self._c(), method)(name=f"{self._name(secret_id)}/versions/{number}")
        except gexc.GoogleAPICallError as e:
            if _precondition_failed(e):
                return  # already in that state
            raise UserError(
                f"cannot change version {number} of secret {secret_id}: {e.__class__.__name__}",
                "check you have roles/secretmanager.admin on the secret",
            ) from None

    def disable_version(self, secret_id: str, number: int) -> None:
        self._version_call("disable_secret_version", secret_id, number)

    def destroy_version(self, secret_id: str, number: int) -> None:
        self._version_call("destroy_secret_version", secret_id, number)
