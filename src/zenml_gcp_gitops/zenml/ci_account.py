"""The CI service account and its API key: created once, rotated on request, stored in Secret Manager.

ensure_ci_account(store, cfg, *, secrets=None, rotate=False, retain_minutes=60,
                  github_repo=None, zenml_url=None, store_secret=True, gh=None) -> CiResult
ci_status(store, cfg) -> dict ;  delete_ci_account(store, cfg, secrets=None) -> list[str]
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import UserError

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..config import DeploymentConfig
    from ..gcp.secrets import SecretAccess
    from .github import GhClient


# ---------------------------------------------------------------------------------- ci


@dataclass
class CiResult:
    service_account_id: str
    service_account_name: str
    api_key_name: str
    secret_id: str | None
    api_key: str | None = field(default=None, repr=False)
    created_account: bool = False
    created_key: bool = False
    rotated: bool = False
    github: str | None = None
    log: list[str] = field(default_factory=list)

    def public_dict(self, show_key: bool = False) -> dict[str, Any]:
        """The `ci-account --output json` contract; the key only when asked for."""
        out: dict[str, Any] = {
            "service_account": {"id": self.service_account_id, "name": self.service_account_name},
            "api_key_name": self.api_key_name,
            "secret_id": self.secret_id,
        }
        if show_key and self.api_key:
            out["api_key"] = self.api_key
        return out


def _get_sa(store: Any, name: str) -> Any:
    try:
        return store.get_service_account(name)
    except KeyError:
        return None


def _get_key(store: Any, sa_id: Any, name: str) -> Any:
    try:
        return store.get_api_key(sa_id, name)
    except KeyError:
        return None


def ensure_ci_account(
    store: Any,
    cfg: DeploymentConfig,
    *,
    secrets: SecretAccess | None = None,
    rotate: bool = False,
    retain_minutes: int = 60,
    github_repo: str | None = None,
    zenml_url: str | None = None,
    store_secret: bool = True,
    gh: GhClient | None = None,
    stack_id: str | None = None,
    on_key: Callable[[str], None] | None = None,
) -> CiResult:
    """Service account `<name>-ci` with API key `ci`; a new key only when missing or `rotate`.

    A new key is written to Secret Manager (`cfg.names.secrets["ci_api_key"]`, a new version)
    when `secrets` is given and `store_secret`; with `github_repo` it is also set as the
    repository secret ZENML_STORE_API_KEY (with ZENML_STORE_URL) through `gh`, or the exact
    commands are logged, and ZENML_ACTIVE_STACK_ID with `stack_id`. The key is returned in
    `CiResult.api_key` only when new. Superseded key versions are retired (`key_versions`).

    ZenML shows a key once, so a new key is kept before anything else can fail: stored, or
    (not storing) handed to `on_key` the moment the server returns it. Without storing, a
    failure to reach Secret Manager while retiring old versions is a log line, never an error.
    """
    from zenml.models import APIKeyRequest, APIKeyRotateRequest, ServiceAccountRequest

    n = cfg.names
    sa_name, key_name = n.zenml_ci_account, n.zenml_ci_key
    secret_id = n.secrets["ci_api_key"] if (secrets is not None and store_secret) else None
    if retain_minutes < 0:
        raise UserError("--retain-minutes must be 0 or more")
    log: list[str] = []
    sa = _get_sa(store, sa_name)
    created_account = False
    if sa is None:
        sa = store.create_service_account(
            ServiceAccountRequest(
                name=sa_name,
                full_name=f"CI for the {cfg.name} ZenML stack",
                description="Managed by zenml-gcp-gitops: runs pipelines from CI",
                active=True,
            )
        )
        created_account = True
        log.append(f"created service account {sa_name}")
    elif not sa.active:
        from zenml.models import ServiceAccountUpdate

        sa = store.update_service_account(sa.id, ServiceAccountUpdate(active=True))
        log.append(f"re-activated service account {sa_name}")

    key = _get_key(store, sa.id, key_name)
    new_key: str | None = None
    created_key = rotated = False
    # ZenML shows a key only once: if our stored copy is gone (or was never made, e.g. after
    # --show-key), a rotation is the only way to a key CI can fetch.
    if (
        key is not None
        and not rotate
        and secret_id
        and secrets is not None
        and secrets.read(secret_id) is None
    ):
        rotate = True
        log.append(f"no key stored in Secret Manager {secret_id}; rotating to store one")
    try:
        if key is None:
            resp = store.create_api_key(
                sa.id, APIKeyRequest(name=key_name, description="CI pipelines (zenml-gcp-gitops)")
            )
            new_key, created_key = resp.key, True
            log.append(f"created API key {key_name}")
        elif rotate:
            resp = store.rotate_api_key(
                sa.id, key_name, APIKeyRotateRequest(retain_period_minutes=retain_minutes)
            )
            new_key, rotated = resp.key, True
            log.append(
                f"rotated API key {key_name}; the old key keeps working for {retain_minutes} min"
            )
        else:
            log.append(f"kept API key {key_name} (pass --rotate for a new one)")
        if new_key and not (secret_id and secrets is not None):
            if on_key is not None:
                on_key(new_key)  # shown now: a later failure cannot lose it
        elif new_key and secret_id and secrets is not None:
            version = secrets.add_version(secret_id, new_key)
            log.append(
                f"stored the key in Secret Manager {secret_id} ({version.rsplit('/', 1)[-1]})"
            )
    except BaseException as e:
        # A key nobody can read again is useless: undo a fresh account or key rather than
        # leave one behind, so a re-run starts clean.
        if created_account:
            _delete_sa_quietly(store, sa.id, key_name)
        elif created_key:
            with contextlib.suppress(Exception):
                store.delete_api_key(sa.id, key_name)
        if rotated and isinstance(e, UserError):
            raise UserError(
                f"rotated the API key but could not store the new one: {e.message}",
                f"the old key keeps working for {retain_minutes} min; fix the access and run "
                "`zenml-gcp-gitops ci-account rotate` again",
            ) from None
        raise

    if secrets is not None and secret_id:
        log.extend(
            retire_key_versions(store, sa.id, key_name, secrets, n.secrets["ci_api_key"]).log
        )
    elif secrets is not None:
        # Not storing (--show-key): older stored versions are still retired when Secret
        # Manager answers; without it (no Google credentials) there is nothing to retire here.
        try:
            log.extend(
                retire_key_versions(store, sa.id, key_name, secrets, n.secrets["ci_api_key"]).log
            )
        except Exception as e:  # noqa: BLE001 - the key is out already; this is housekeeping
            why = e.message if isinstance(e, UserError) else e.__class__.__name__
            log.append(f"skipped retiring stored key versions in Secret Manager: {why}")
    result = CiResult(
        service_account_id=str(sa.id),
        service_account_name=sa.name,
        api_key_name=key_name,
        secret_id=secret_id,
        api_key=new_key,
        created_account=created_account,
        created_key=created_key,
        rotated=rotated,
        log=log,
    )
    if github_repo:
        from .github import set_repo_secrets

        key_for_gh = new_key
        if key_for_gh is None and secrets is not None:
            key_for_gh = secrets.read(n.secrets["ci_api_key"])
        result.github = set_repo_secrets(
            github_repo,
            zenml_url or "",
            key_for_gh,
            secret_id=n.secrets["ci_api_key"],
            project=cfg.project,
            gh=gh,
            log=log,
            stack_id=stack_id,
        )
    return result


def _delete_sa_quietly(store: Any, sa_id: Any, key_name: str) -> None:
    try:
        if _get_key(store, sa_id, key_name) is not None:
            store.delete_api_key(sa_id, key_name)
        store.delete_service_account(sa_id)
    except Exception:  # noqa: BLE001 - cleanup after a failure; the first error is the one raised
        pass


def retire_key_versions(
    store: Any, sa_id: Any, key_name: str, secrets: Any, secret_id: str, now: Any = None
) -> Any:
    """Disable/destroy stored key versions whose key ZenML no longer accepts (`key_versions`)."""
    from ..gcp.key_versions import enforce

    key = _get_key(store, sa_id, key_name)
    rotated = key.last_rotated if key is not None else None
    retain = key.retain_period_minutes if key is not None else 0
    return enforce(secrets, secret_id, rotated, retain, now=now)


def ci_status(
    store: Any, cfg: DeploymentConfig, secrets: Any = None, now: datetime | None = None
) -> dict[str, Any]:
    """Account and key state, and the key's age. With `secrets`, also retires the stored key
    versions that are due and reports each version's state (`key_versions`)."""
    n = cfg.names
    sa = _get_sa(store, n.zenml_ci_account)
    if sa is None:
        return {"service_account": None, "api_key": None, "healthy": False}
    key = _get_key(store, sa.id, n.zenml_ci_key)
    out: dict[str, Any] = {
        "service_account": {"id": str(sa.id), "name": sa.name, "active": bool(sa.active)},
        "api_key": None,
        "secret_id": n.secrets["ci_api_key"],
    }
    if key is not None:
        since = key.last_rotated or key.created
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        out["api_key"] = {
            "name": key.name,
            "active": bool(key.active),
            "age_days": round((datetime.now(UTC) - since).total_seconds() / 86400, 2),
            "last_login": key.last_login.isoformat() if key.last_login else None,
            "last_rotated": key.last_rotated.isoformat() if key.last_rotated else None,
        }
    out["healthy"] = bool(sa.active and key is not None and key.active)
    if secrets is not None:
        kv = retire_key_versions(
            store, sa.id, n.zenml_ci_key, secrets, n.secrets["ci_api_key"], now=now
        )
        out["key_versions"] = kv.versions
        out["key_versions_log"] = [*kv.log, kv.summary()]
    return out


def delete_ci_account(
    store: Any, cfg: DeploymentConfig, secrets: SecretAccess | None = None
) -> list[str]:
    """Delete the API keys, the service account and the stored key versions."""
    from zenml.models import APIKeyFilter

    n = cfg.names
    removed: list[str] = []
    sa = _get_sa(store, n.zenml_ci_account)
    if sa is not None:
        for k in list(store.list_api_keys(sa.id, APIKeyFilter(), hydrate=True).items):
            store.delete_api_key(sa.id, k.id)
            removed.append(f"api_key:{k.name}")
        store.delete_service_account(sa.id)
        removed.append(f"service_account:{sa.name}")
    if secrets is not None:
        count = secrets.destroy_versions(n.secrets["ci_api_key"])
        if count:
            removed.append(f"secret_versions:{n.secrets['ci_api_key']}:{count}")
    return removed
