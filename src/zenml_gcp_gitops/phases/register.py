"""The `register` phase: upsert the deployment's ZenML stack on the deployed server.

    zenml_stack_plan(cfg, outputs) -> dict      the `zenml_stack` section of the plan contract
    RegisterPhase().run(ctx) -> dict            {"stack": {id,name}, "components": {...}, "connector": {...}}

The ZenML URL comes from `ctx.recorded["gitops"]["zenml_url"]`, else `ctx.infra.zenml_url`
(or `ctx.options.zenml_url`). Admin credentials come from the Secret Manager secret
`ctx.infra.secret_ids["zenml_admin"]` (JSON {"username","password"}); the environment's
(`ZENML_STORE_API_KEY`, or `ZENML_STORE_USERNAME` + `ZENML_STORE_PASSWORD`) are used only with
`ctx.options.credentials_from_env`, for a server the outputs do not describe, or when the
secret is missing. The same order holds for MLflow's login (`MLFLOW_TRACKING_*`).
Secret Manager is reached through `ctx.services.secret_manager` when given (tests inject
`tests.fakes.gcp_secrets.FakeSecretManager`), else google-cloud-secret-manager.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from ..errors import PhaseError
from ..zenml.stack_spec import gcp_stack_spec

if TYPE_CHECKING:
    from ..config import DeploymentConfig
    from ..gcp.secrets import SecretAccess
    from ..outputs import InfraOutputs
    from ..zenml.session import Credentials
    from ..zenml.stack_spec import StackSpec
    from .base import PhaseContext


def zenml_stack_plan(cfg: DeploymentConfig, outputs: InfraOutputs) -> dict[str, Any]:
    """The `zenml_stack` plan section: what register and ci will create, secrets masked."""
    spec = gcp_stack_spec(cfg, outputs).public_dict()
    return {
        "name": spec["name"],
        "labels": spec["labels"],
        "connector": spec["connector"],
        "components": spec["components"],
        "secrets": spec["secrets"],
        "flavors": spec["flavors"],
        "ci": {
            "service_account": cfg.names.zenml_ci_account,
            "secret_id": cfg.names.secrets["ci_api_key"],
        },
    }


def zenml_url_of(ctx: PhaseContext) -> str:
    """The server URL: an explicit option, what gitops recorded, else the infra hostname."""
    url = ctx.options.zenml_url or ctx.recorded.get("gitops", {}).get("zenml_url")
    return str(url or ctx.infra.zenml_url)


def secret_access(ctx: PhaseContext) -> SecretAccess:
    from ..gcp.secrets import GcpSecretManager

    if ctx.services.secret_manager is not None:
        return ctx.services.secret_manager
    return GcpSecretManager(ctx.cfg.project)


def _secret_id(ctx: PhaseContext, key: str) -> str:
    """The Secret Manager ID infra recorded, else the derived name (no outputs at hand)."""
    try:
        recorded = ctx.infra.secret_ids.get(key)
    except PhaseError:
        recorded = None
    return recorded or ctx.cfg.names.secrets[key]


def _own_server(ctx: PhaseContext) -> bool:
    """True when the server we talk to is the one this deployment's outputs describe."""
    try:
        infra_url = ctx.infra.zenml_url
    except PhaseError:
        return False
    own = {infra_url, ctx.recorded.get("gitops", {}).get("zenml_url")}
    return zenml_url_of(ctx) in own


def _note(ctx: PhaseContext, line: str) -> None:
    step = getattr(ctx.reporter, "step", None)
    if step is not None:
        step(line)


def _pick(ctx: PhaseContext, what: str, env: Any, env_names: str, read_own: Any) -> tuple[Any, str]:
    """The deployment's own secret first; the environment's only with --credentials-from-env
    or for a server the outputs do not describe. Says which was used when both exist and
    differ (names only, never a value)."""
    from_env = ctx.options.credentials_from_env
    if env is not None and (from_env or not _own_server(ctx)):
        return env, "environment"
    try:
        own, secret_id = read_own()
    except PhaseError:
        if env is not None:
            _note(ctx, f"{what}: using {env_names} from the environment (no usable secret)")
            return env, "environment"
        raise
    if env is not None and env != own:
        _note(
            ctx,
            f"{what}: using the deployment's secret {secret_id}; {env_names} in the environment "
            "differ and were ignored (pass --credentials-from-env to use them)",
        )
    return own, "secret"


def admin_credentials(ctx: PhaseContext) -> Credentials:
    """Admin login: the Secret Manager secret infra made, else (or when told) the env."""
    from ..zenml.session import Credentials

    def own() -> tuple[Credentials, str]:
        secret_id = _secret_id(ctx, "zenml_admin")
        raw = secret_access(ctx).read(secret_id)
        if raw is None:
            raise PhaseError(
                f"the ZenML admin secret {secret_id} has no version",
                "run the infra phase, or set ZENML_STORE_USERNAME/ZENML_STORE_PASSWORD",
            )
        try:
            data = json.loads(raw)
            return (
                Credentials(username=str(data["username"]), password=str(data["password"])),
                secret_id,
            )
        except (ValueError, KeyError, TypeError):
            raise PhaseError(
                f"the ZenML admin secret {secret_id} is not JSON with username and password",
                "re-run the infra phase to regenerate it",
            ) from None

    creds, _ = _pick(ctx, "ZenML login", Credentials.from_env(), "ZENML_STORE_*", own)
    return creds  # type: ignore[no-any-return]


def mlflow_credentials(ctx: PhaseContext) -> tuple[str, str]:
    """MLflow basic-auth login: infra's Secret Manager secret, else (or when told) the env."""
    user, pw = (
        os.environ.get("MLFLOW_TRACKING_USERNAME"),
        os.environ.get("MLFLOW_TRACKING_PASSWORD"),
    )
    env = (user, pw) if user and pw else None

    def own() -> tuple[tuple[str, str], str]:
        secret_id = _secret_id(ctx, "mlflow_auth")
        raw = secret_access(ctx).read(secret_id)
        if raw is None:
            raise PhaseError(
                f"the MLflow auth secret {secret_id} has no version", "run the infra phase"
            )
        try:
            data = json.loads(raw)
            return (str(data["username"]), str(data["password"])), secret_id
        except (ValueError, KeyError, TypeError):
            raise PhaseError(
                f"the MLflow auth secret {secret_id} is not JSON with username and password",
                "re-run the infra phase to regenerate it",
            ) from None

    pair, _ = _pick(ctx, "MLflow login", env, "MLFLOW_TRACKING_USERNAME/PASSWORD", own)
    return pair  # type: ignore[no-any-return]


def build_spec(ctx: PhaseContext) -> StackSpec:
    user, pw = mlflow_credentials(ctx)
    return gcp_stack_spec(ctx.cfg, ctx.infra, zenml_url_of(ctx), user, pw)


def connect_for_destroy(ctx: PhaseContext) -> Any:
    """The server for a teardown, or None when it is gone: its objects live in the Cloud SQL
    database that the infra teardown deletes anyway, so an unreachable server must not block
    `destroy`."""
    from ..errors import ServiceUnavailable
    from ..zenml.session import connect

    url = zenml_url_of(ctx)
    try:
        return connect(url, admin_credentials(ctx), timeout=min(ctx.options.timeout, 60))
    except ServiceUnavailable as e:
        ctx.reporter.log(f"skipped: {e.message}; its database goes with the infra teardown")
        return None


class RegisterPhase:
    name = "register"

    def run(self, ctx: PhaseContext) -> dict[str, Any]:
        from ..zenml.apply import apply_stack_spec
        from ..zenml.session import Deadline, connect

        url = zenml_url_of(ctx)
        # --timeout bounds the whole run: the health wait, the login and every request.
        deadline = Deadline(ctx.options.timeout)
        # Reach and log in to the server first: its errors are the likelier ones to fix.
        store = connect(url, admin_credentials(ctx), timeout=ctx.options.timeout, deadline=deadline)
        spec = build_spec(ctx)
        ctx.reporter.step(f"Registering stack {spec.name} on {url}")
        # The deployed server reaches GCP, so verify the connector and record the verdict;
        # a failed verification is reported, not fatal (the stack is still registered).
        result = apply_stack_spec(
            store,
            spec,
            adopt=ctx.options.adopt,
            verify=ctx.options.verify_connector,
        )
        for line in result.log:
            ctx.reporter.log(line)
        out = {"zenml_url": url, **result.public_dict()}
        if result.verification is not None:
            out["connector_verification"] = result.verification
        return out

    def status(self, ctx: PhaseContext) -> dict[str, Any]:
        from ..zenml.apply import stack_status
        from ..zenml.session import connect

        spec = gcp_stack_spec(ctx.cfg, ctx.infra)
        store = connect(zenml_url_of(ctx), admin_credentials(ctx), timeout=10)
        # The server verifies the connector against GCP; where it can't reach GCP the
        # failure is reported in the status, not raised.
        return stack_status(store, spec, verify=ctx.options.verify_connector)

    def destroy(self, ctx: PhaseContext) -> None:
        from ..zenml.deregister import delete_stack_spec

        spec = gcp_stack_spec(ctx.cfg, ctx.infra)
        store = connect_for_destroy(ctx)
        if store is not None:
            kept: list[str] = []
            for line in delete_stack_spec(store, spec, adopt=ctx.options.adopt, kept=kept):
                ctx.reporter.log(f"deleted {line}")
            for line in kept:
                ctx.reporter.log(line)
