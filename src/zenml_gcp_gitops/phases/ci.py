"""The `ci` phase: a ZenML service account `<name>-ci` with an API key for CI jobs.

    CiPhase().run(ctx) -> dict   {"service_account": {id,name}, "api_key_name", "secret_id"}

A re-run keeps the key unless `ctx.options.rotate` (then `retain_minutes` applies). The
key goes to Secret Manager `cfg.names.secrets["ci_api_key"]` as a new version and, with
`ctx.options.github_repo` (or `cfg.github_repo`), to the repository's Actions secrets via
`gh`. It never goes into the record. URL and credentials are found as in `register`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .register import admin_credentials, connect_for_destroy, secret_access, zenml_url_of

if TYPE_CHECKING:
    from .base import PhaseContext


class CiPhase:
    name = "ci"

    def run(self, ctx: PhaseContext) -> dict[str, Any]:
        from ..zenml.apply import find_stack_id
        from ..zenml.ci_account import ensure_ci_account
        from ..zenml.session import Deadline, connect

        url = zenml_url_of(ctx)
        ctx.reporter.step(f"Ensuring the CI service account {ctx.cfg.names.zenml_ci_account}")
        deadline = Deadline(ctx.options.timeout)
        store = connect(url, admin_credentials(ctx), timeout=ctx.options.timeout, deadline=deadline)
        result = ensure_ci_account(
            store,
            ctx.cfg,
            secrets=secret_access(ctx),
            rotate=ctx.options.rotate,
            retain_minutes=ctx.options.retain_minutes,
            github_repo=ctx.options.github_repo or ctx.cfg.github_repo,
            zenml_url=url,
            stack_id=find_stack_id(store, ctx.cfg.names.zenml_stack),
        )
        for line in result.log:
            ctx.reporter.log(line)
        return result.public_dict()

    def status(self, ctx: PhaseContext) -> dict[str, Any]:
        from ..zenml.ci_account import ci_status
        from ..zenml.session import connect

        store = connect(zenml_url_of(ctx), admin_credentials(ctx), timeout=10)
        st = ci_status(store, ctx.cfg, secrets=secret_access(ctx))
        for line in st.pop("key_versions_log", []):
            ctx.reporter.log(line)
        return st

    def destroy(self, ctx: PhaseContext) -> None:
        from ..zenml.ci_account import delete_ci_account

        store = connect_for_destroy(ctx)
        if store is not None:
            for line in delete_ci_account(store, ctx.cfg, secrets=secret_access(ctx)):
                ctx.reporter.log(f"deleted {line}")
