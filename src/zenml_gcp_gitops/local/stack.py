"""The local rehearsal's stack, pointed at loopback services: the GCP stack's artifact store
and MLflow tracker, with a local orchestrator and image builder and no service connector.

    local_stack_spec(names, mlflow_url, mlflow_username, mlflow_password, registry_uri=None)
        -> StackSpec   gcp artifact store on the emulator, mlflow tracker (secret-referenced
                       credentials), local orchestrator, local image builder; registers the
                       GCP stack's Cloud Build flavor too
    LocalSecretFiles(dir)   the `SecretAccess` the ci phase writes the API key to: 0600 files
    register_local(...)     runs the issue-5 apply (`zenml.apply.apply_stack_spec`) and CI account
                            code unchanged, against the local server

The artifact store has no service connector: gcsfs reaches the emulator anonymously through
`STORAGE_EMULATOR_HOST`, which every process that touches artifacts must have (the env file).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..zenml.stack_spec import (
    ComponentSpec,
    StackSpec,
    build_account_flavor,
    gcs_artifact_store,
    local_image_builder,
    mlflow_tracker,
)
from .services import read_secret, write_secret

if TYPE_CHECKING:
    from ..names import LocalNames

_SECRET_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


def local_stack_spec(
    names: LocalNames,
    mlflow_url: str,
    mlflow_username: str,
    mlflow_password: str,
    registry_uri: str | None = None,
) -> StackSpec:
    comps = names.zenml_components
    tracker, mlflow_secret = mlflow_tracker(names, mlflow_url, mlflow_username, mlflow_password)
    components: dict[str, ComponentSpec] = {
        "artifact_store": gcs_artifact_store(names, names.artifact_bucket, connected=False),
        "orchestrator": ComponentSpec(
            type="orchestrator", name=comps["orchestrator"], flavor="local"
        ),
        "experiment_tracker": tracker,
        "image_builder": local_image_builder(names),
    }
    if registry_uri:
        components["container_registry"] = ComponentSpec(
            type="container_registry",
            name=comps["container_registry"],
            flavor="default",
            configuration={"uri": registry_uri},
        )
    return StackSpec(
        name=names.zenml_stack,
        labels=dict(names.zenml_labels),
        connector=None,
        components=components,
        secrets=(mlflow_secret,),
        # Not used without Cloud Build, but registered exactly as on GCP, so the rehearsal
        # proves the server accepts it and clients load it.
        flavors=(build_account_flavor(),),
    )


class LocalSecretFiles:
    """`SecretAccess` backed by one 0600 file per secret ID (Secret Manager's local stand-in)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, secret_id: str) -> Path:
        if not _SECRET_ID_RE.match(secret_id):
            raise ValueError(f"invalid secret id {secret_id!r}")
        return self.directory / secret_id

    def read(self, secret_id: str) -> str | None:
        return read_secret(self.path(secret_id))

    def add_version(self, secret_id: str, value: str) -> str:
        write_secret(self.path(secret_id), value)
        return f"file://{self.path(secret_id)}"

    def destroy_versions(self, secret_id: str) -> int:
        p = self.path(secret_id)
        if p.exists():
            p.unlink()
            return 1
        return 0


def register_local(
    *,
    zenml_url: str,
    admin_username: str,
    admin_password: str,
    spec: StackSpec,
    ci_config: Any,
    secrets: LocalSecretFiles,
    timeout: float = 120,
) -> dict[str, Any]:
    """Upsert the stack and the CI account with the GCP code path; returns public data only."""
    import time

    from ..zenml.apply import apply_stack_spec
    from ..zenml.ci_account import ensure_ci_account
    from ..zenml.session import Credentials, connect

    t0 = time.monotonic()
    store = connect(
        zenml_url, Credentials(username=admin_username, password=admin_password), timeout=timeout
    )
    t1 = time.monotonic()
    result = apply_stack_spec(store, spec, adopt=False)
    t2 = time.monotonic()
    summary = result.summary()
    ci_args: dict[str, Any] = dict(
        secrets=secrets, retain_minutes=0, github_repo=None, zenml_url=zenml_url
    )
    ci = ensure_ci_account(store, ci_config, rotate=False, **ci_args)
    ci_log = list(ci.log)
    if secrets.read(ci_config.names.secrets["ci_api_key"]) is None:
        # The server has the key but our copy is gone (deleted file): ZenML shows a key only
        # once, so the only way back to a usable key is a rotation.
        ci = ensure_ci_account(store, ci_config, rotate=True, **ci_args)
        ci_log += list(ci.log)
    return {
        "register": result.public_dict(),
        "register_log": list(result.log),
        "ci": ci.public_dict(),
        "ci_log": ci_log,
        "seconds": {
            "connect": round(t1 - t0, 2),
            "apply": round(t2 - t1, 2),
            "ci": round(time.monotonic() - t2, 2),
        },
        "changed": bool(summary["created"] or summary["updated"])
        or ci.created_account
        or ci.created_key
        or ci.rotated,
    }


def local_ci_config(names: LocalNames) -> Any:
    """What `ensure_ci_account` reads from a config, for the local rehearsal: names only."""
    from types import SimpleNamespace

    return SimpleNamespace(
        name=names.prefix,
        names=SimpleNamespace(
            prefix=names.prefix,
            zenml_ci_account=names.zenml_ci_account,
            zenml_ci_key=names.zenml_ci_key,
            secrets={"ci_api_key": names.ci_api_key_secret},
            zenml_labels=dict(names.zenml_labels),
        ),
    )
