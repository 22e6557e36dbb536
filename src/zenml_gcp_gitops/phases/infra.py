"""The `infra` phase: the Pulumi program, run inline through the Automation API.

    InfraPhase().run(ctx) -> {"outputs": {...}, "secret_outputs": [...], "resource_count": N, ...}

`up` refreshes an existing stack, then updates it with live progress from the engine's event
stream. Secret outputs (Pulumi secrets) are never returned: later phases fetch them with
`read_secret_output(cfg, key)`. Provider errors are summarised (resource, operation, first
meaningful line) and the full engine log is kept in a file whose path is printed. Ctrl-C is
forwarded to the engine, which stops cleanly; the phase is then recorded as interrupted.

It reads `ctx.dry_run`, `ctx.options` (force, verbose, allow_replace, pulumi_root,
pulumi_home, work_dir, env) and `ctx.services.program` (a callable cfg -> None; the packaged
program when None).

An existing stack is previewed before `up`: a replacement or deletion of a stateful resource
stops the deploy unless `allow_replace` covers it (see `state/replace_guard.py`).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from ..infra.events import (
    EventTracker,
    engine_failure,
    first_meaningful_line,
    is_permission_denied,
    log_path,
)
from ..infra.interrupt import run_interruptible
from ..infra.stack import (
    StackHandle,
    configure,
    exported_resources,
    open_stack,
    resource_count,
    split_outputs,
)
from ..state.replace_guard import StepCollector, blocked, refusal, stateful_changes

if TYPE_CHECKING:
    from ..config import DeploymentConfig
    from ..run_options import RunOptions
    from .base import PhaseContext, Reporter
    from .headstart import HeadStart

# Resource types whose `deletionProtection` input blocks deletion, and buckets that refuse
# deletion while they hold objects unless `forceDestroy` is set.
_PROTECTABLE = ("gcp:container/cluster:Cluster", "gcp:sql/databaseInstance:DatabaseInstance")


_BUCKET = "gcp:storage/bucket:Bucket"
_ZONE = "gcp:dns/managedZone:ManagedZone"
_RECORD = "gcp:dns/recordSet:RecordSet"


def protected_resources(resources: list[dict[str, Any]]) -> list[str]:
    """Resources a plain destroy cannot delete: deletion-protected GKE/SQL, non-force buckets."""
    out = []
    for r in resources:
        typ = r.get("type", "")
        inputs = r.get("inputs") or {}
        name = inputs.get("name") or r.get("urn", "").rsplit("::", 1)[-1]
        short = typ.rsplit(":", 1)[-1]
        if (typ in _PROTECTABLE and inputs.get("deletionProtection") is not False) or (
            typ == _BUCKET and not inputs.get("forceDestroy")
        ):
            out.append(f"{short} {name}")
        elif r.get("protect"):
            out.append(f"{short} {name} (protect)")
    return out


# Seconds between reruns of `up` when a create was refused right after new IAM grants. Google
# documents that a grant usually applies within two minutes and can take up to seven.
IAM_RETRY_DELAYS: tuple[float, ...] = (30.0, 60.0, 120.0, 210.0)


def _up(
    handle: StackHandle,
    cfg: DeploymentConfig,
    reporter: Reporter,
    verbose: bool,
    op: str = "up",
    sleep: Callable[[float], object] | None = None,
    head_start: HeadStart | None = None,
) -> tuple[Any, EventTracker, Path]:
    """`up`, rerun with backoff while a create is refused for want of a grant this run made.

    A CMEK key grant to a service agent or a role of the node account is made, and the
    repository, secret, instance or cluster that needs it is created at once: for a few
    minutes GCP can still say "permission denied". Only that error class after grants made
    by this deploy is retried, at most `len(IAM_RETRY_DELAYS)` times; anything else fails.
    """
    from pulumi import automation as auto

    wait = sleep or time.sleep
    grants: list[str] = []
    changes: dict[str, int] = {}
    durations: dict[str, list[float]] = {}
    for attempt in range(len(IAM_RETRY_DELAYS) + 1):
        log = log_path(cfg, op if attempt == 0 else f"{op}-retry{attempt}")
        tracker = EventTracker(reporter, total=resource_count(handle) or None)
        with log.open("w") as f:

            def on_output(line: str) -> None:
                f.write(line + "\n")
                f.flush()
                reporter.log(line)

            on_event: Callable[[Any], None] = tracker
            if head_start is not None:
                on_event = _chain(tracker, head_start.on_event)
            try:
                result = run_interruptible(
                    lambda e=on_event, out=on_output: handle.stack.up(  # type: ignore[misc]
                        on_event=e, on_output=out, on_error=out, color="never"
                    ),
                    reporter,
                    stop=head_start.failed if head_start is not None else None,
                )
            except auto.CommandError as e:
                f.flush()
                grants += tracker.grants
                _add_changes(changes, durations, tracker)
                summary = "\n".join(tracker.summary()) or str(e)
                if attempt < len(IAM_RETRY_DELAYS) and grants and is_permission_denied(summary):
                    delay = IAM_RETRY_DELAYS[attempt]
                    engine_failure(cfg, e, op, tracker, log)  # keeps the engine's words
                    reporter.step(
                        f"Permission denied after this deploy made {len(grants)} IAM grants "
                        f"({', '.join(sorted(set(grants))[:4])}{', ...' if len(grants) > 4 else ''}"
                        f"): GCP takes minutes to apply a new grant. Rerunning `{op}` in "
                        f"{delay:.0f}s (retry {attempt + 1} of {len(IAM_RETRY_DELAYS)}): "
                        f"{first_meaningful_line(summary)}"
                    )
                    wait(delay)
                    continue
                raise engine_failure(cfg, e, op, tracker, log) from None
        _add_changes(changes, durations, tracker)
        tracker.changes, tracker.durations = changes, durations
        return result, tracker, log
    raise AssertionError("unreachable: the last attempt returns or raises")


def _chain(*handlers: Callable[[Any], None]) -> Callable[[Any], None]:
    def on_event(event: Any) -> None:
        for handle in handlers:
            handle(event)

    return on_event


def _add_changes(
    changes: dict[str, int], durations: dict[str, list[float]], tracker: EventTracker
) -> None:
    """What every attempt did, so a retried `up` reports the whole deploy: what an earlier
    attempt changed is `same` to the next one, and counted once, as the change."""
    done_before = sum(v for k, v in changes.items() if k != "same")
    for k, v in tracker.changes.items():
        if k == "same":
            changes["same"] = max(0, v - done_before)
        else:
            changes[k] = changes.get(k, 0) + v
    if not changes.get("same"):
        changes.pop("same", None)
    for k, ds in tracker.durations.items():
        durations.setdefault(k, []).extend(ds)


def _changes_text(changes: dict[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(changes.items())) or "no changes"


# What `destroy` leaves in GCP (it cannot delete them) and a later deploy imports.
RETAINED_TYPES = {
    "kms_key_ring": "gcp:kms/keyRing:KeyRing",
    "kms_key": "gcp:kms/cryptoKey:CryptoKey",
    "wif_pool": "gcp:iam/workloadIdentityPool:WorkloadIdentityPool",
    "wif_provider": "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider",
}


def audit_prior(ctx: PhaseContext) -> dict[str, Any]:
    """The project's audit configs before the first deploy, as preflight recorded them."""
    return dict(ctx.recorded.get("preflight", {}).get("audit_prior") or {})


def restore_audit_configs(ctx: PhaseContext) -> None:
    """After `destroy`: write back the audit configs the program's merged ones replaced.

    Only where the service now has none (Pulumi deleted ours): a config someone set since
    is theirs, and is left as it is.
    """
    from ..gcp.api import GcpApi
    from ..gcp.audit import restorable

    todo = restorable(audit_prior(ctx))
    if not todo:
        return
    api = ctx.services.gcp_api or GcpApi(ctx.cfg)
    for service, configs in todo.items():
        if api.restore_audit_config(ctx.cfg.project, service, configs):
            ctx.reporter.step(f"Restored the audit config {service} had before the deploy")
        else:
            ctx.reporter.step(
                f"Left the audit config of {service} as it is: it was changed after the deploy"
            )


def with_github_ids(ctx: PhaseContext) -> DeploymentConfig:
    """The config with `github_repo`'s immutable IDs: from the config, else as recorded by an
    earlier deploy, else looked up once now (and recorded by the caller)."""
    cfg = ctx.cfg
    if not cfg.github_repo or (cfg.github_repo_id and cfg.github_owner_id):
        return cfg
    known = ctx.recorded.get("infra", {}).get("github") or {}
    if known.get("repo") == cfg.github_repo and known.get("repo_id") and known.get("owner_id"):
        rid, oid = int(known["repo_id"]), int(known["owner_id"])
    else:
        from ..zenml.github import GhClient, lookup_repo_ids

        ctx.reporter.step(f"Looking up the GitHub IDs of {cfg.github_repo}")
        rid, oid = lookup_repo_ids(cfg.github_repo, ctx.services.gh or GhClient())
    return cfg.model_copy(update={"github_repo_id": rid, "github_owner_id": oid})


def _github_record(cfg: DeploymentConfig) -> dict[str, Any]:
    if not cfg.github_repo:
        return {}
    return {"repo": cfg.github_repo, "repo_id": cfg.github_repo_id, "owner_id": cfg.github_owner_id}


class InfraPhase:
    name = "infra"

    def run(self, ctx: PhaseContext) -> dict[str, Any]:
        cfg, opts, rep = ctx.cfg, ctx.options, ctx.reporter
        if ctx.dry_run:
            return self._preview(ctx)
        pcfg = with_github_ids(ctx)
        rep.step(f"Opening stack {cfg.names.pulumi_stack} in {cfg.state_url}")
        prior = audit_prior(ctx)
        handle = open_stack(cfg, opts, ctx.services, program_cfg=pcfg, audit_prior=prior)
        assert handle is not None
        adopt = self._adoptable(ctx, handle)
        if adopt:
            rep.step(f"Adopting {', '.join(adopt.values())}, kept by GCP from an earlier deploy")
            handle = open_stack(
                cfg, opts, ctx.services, program_cfg=pcfg, adopt=adopt, audit_prior=prior
            )
            assert handle is not None
        configure(handle, cfg, rep, ctx.paused)
        if handle.existed and (resource_count(handle) or 0) > 0:
            rep.step("Refreshing the stack against GCP")
            log = log_path(cfg, "refresh")
            tracker = EventTracker(rep, total=resource_count(handle))
            from pulumi import automation as auto

            try:
                run_interruptible(
                    lambda: handle.stack.refresh(on_event=tracker, color="never"), rep
                )
            except auto.CommandError as e:
                raise engine_failure(cfg, e, "refresh", tracker, log) from None
            self._guard_stateful(handle, cfg, opts, rep)
        rep.step("Updating the stack")
        result, tracker, log = _up(
            handle, cfg, rep, opts.verbose, sleep=ctx.services.sleep, head_start=ctx.head_start
        )
        rep.step(f"{tracker.done} resources ({_changes_text(tracker.changes)}); engine log: {log}")
        plain, secret = split_outputs(result.outputs)
        from ..outputs import InfraOutputs

        # validate the contract with every value, but keep only the plain ones
        InfraOutputs.from_mapping(
            {k: v.value for k, v in result.outputs.items()}, source="stack outputs"
        )
        from ..estimate.durations import summarize

        return {
            "outputs": plain,
            "secret_outputs": secret,
            "resource_durations": summarize(tracker.durations),
            "stack": handle.stack.name,
            "backend": handle.state_url,
            "resource_count": tracker.done or resource_count(handle),
            "changes": tracker.changes,
            "log_file": str(log),
            "github": _github_record(pcfg),
        }

    def _adoptable(self, ctx: PhaseContext, handle: StackHandle) -> dict[str, str]:
        """What preflight found retained in GCP and the stack does not hold: imported."""
        retained: dict[str, str] = ctx.recorded.get("preflight", {}).get("retained") or {}
        if not retained:
            return {}
        held = {r.get("type") for r in exported_resources(handle)} if handle.existed else set()
        return {
            k: v
            for k, v in retained.items()
            if k in RETAINED_TYPES and RETAINED_TYPES[k] not in held
        }

    def _guard_stateful(
        self, handle: StackHandle, cfg: DeploymentConfig, opts: RunOptions, rep: Reporter
    ) -> None:
        """Preview first; stop before `up` if a stateful resource would be replaced or deleted."""
        from pulumi import automation as auto

        allowed = opts.allow_replace
        tracker = EventTracker(rep, total=resource_count(handle) or None)
        steps = StepCollector(then=tracker)
        rep.step("Previewing the update (replacing or deleting data needs --allow-replace)")
        try:
            run_interruptible(lambda: handle.stack.preview(on_event=steps, color="never"), rep)
        except auto.CommandError as e:
            # a protected resource makes the preview itself fail: name it, not the error
            bad = blocked(steps.changes, allowed)
            if bad:
                raise refusal(bad) from None
            raise engine_failure(cfg, e, "preview", tracker) from None
        bad = blocked(steps.changes, allowed)
        if bad:
            raise refusal(bad)
        for change in stateful_changes(steps.changes):
            rep.step(f"--allow-replace: will {change.describe()}")

    def _preview(self, ctx: PhaseContext) -> dict[str, Any]:
        import shutil

        cfg, opts, rep = ctx.cfg, ctx.options, ctx.reporter
        pre = ctx.recorded.get("preflight", {})
        handle = None
        if pre.get("state_ready") is not False:
            handle = open_stack(cfg, opts, ctx.services, create=False, audit_prior=audit_prior(ctx))
        scratch: list[str] = []
        try:
            if handle is None:
                # No state (or no stack) yet: preview against an empty throwaway backend, where
                # everything is a create. Nothing is written to the real backend.
                rep.step("No stack yet: previewing against an empty throwaway backend")
                scratch.append(tempfile.mkdtemp(prefix="zgg-preview-state-"))
                handle = open_stack(
                    cfg,
                    opts,
                    ctx.services,
                    state_url="file://" + scratch[0],
                    extra_env={"PULUMI_CONFIG_PASSPHRASE": os.urandom(16).hex()},
                    audit_prior=audit_prior(ctx),
                )
                assert handle is not None
                scratch.append(str(handle.work_dir))
                configure(handle, cfg, rep, ctx.paused)
            return self._run_preview(
                handle, cfg, rep, opts.allow_replace, empty_state=bool(scratch)
            )
        finally:
            for d in scratch:
                shutil.rmtree(d, ignore_errors=True)

    def _run_preview(
        self,
        handle: StackHandle,
        cfg: DeploymentConfig,
        rep: Reporter,
        allowed: frozenset[str],
        empty_state: bool,
    ) -> dict[str, Any]:
        from pulumi import automation as auto

        tracker = EventTracker(rep, total=resource_count(handle) or None)
        steps = StepCollector(then=tracker)
        rep.step("Previewing changes (nothing is modified)")
        try:
            result = run_interruptible(
                lambda: handle.stack.preview(on_event=steps, color="never"), rep
            )
            changes = {getattr(k, "value", str(k)): v for k, v in result.change_summary.items()}
        except auto.CommandError as e:
            # a protected resource fails the preview; the summary still names what it found
            if not steps.changes:
                raise engine_failure(cfg, e, "preview", tracker) from None
            changes = dict(tracker.changes)
        bad = blocked(steps.changes, allowed)
        return {
            "preview": {
                "create": changes.get("create", 0),
                "update": changes.get("update", 0),
                "replace": changes.get("replace", 0) + changes.get("create-replacement", 0),
                "delete": changes.get("delete", 0),
                "same": changes.get("same", 0),
                # stateful resources it would replace or delete; `blocked` ones stop a deploy
                "stateful": [
                    {"resource": c.key, "action": c.action, "blocked": c in bad}
                    | ({"cloud_name": c.cloud_name} if c.cloud_name else {})
                    for c in stateful_changes(steps.changes)
                ],
            },
            "empty_state": empty_state,
        }

    def status(self, ctx: PhaseContext) -> dict[str, Any]:
        handle = open_stack(ctx.cfg, ctx.options, ctx.services, create=False)
        if handle is None:
            return {"stack": None, "reachable": True, "resources": 0}
        info = None
        for s in handle.stack.workspace.list_stacks():
            if s.name == handle.stack.name:
                info = s
        last = handle.stack.info(show_secrets=False)
        return {
            "stack": handle.stack.name,
            "backend": handle.state_url,
            "reachable": True,
            "resources": info.resource_count if info else None,
            "update_in_progress": info.update_in_progress if info else None,
            "last_update": {
                "result": last.result,
                "kind": last.kind,
                "end_time": str(last.end_time),
            }
            if last
            else None,
        }

    def check_destroy(self, ctx: PhaseContext) -> None:
        """Refuse, before anything is torn down, to silently lift deletion protection, or to
        delete a zone that holds records the stack did not make."""
        handle = open_stack(ctx.cfg, ctx.options, ctx.services, create=False)
        if handle is None:
            return
        resources = exported_resources(handle)
        self._zone_leftovers(ctx, resources)
        if ctx.options.force:
            return
        protected = protected_resources(resources)
        if protected:
            raise UserError(
                f"{len(protected)} resources are protected against deletion: {', '.join(protected)}",
                "re-run with --force to lift deletion protection (one `pulumi up`) and delete "
                "them; the data in Cloud SQL and the buckets is lost",
            )

    def _zone_leftovers(
        self, ctx: PhaseContext, resources: list[dict[str, Any]]
    ) -> tuple[Any, str, str, list[Any]]:
        """For a zone `deploy` created: (DNS API, project, zone, records to delete before
        Pulumi deletes the zone). Foreign records stop the destroy unless --force."""
        zones = [r for r in resources if r.get("type") == _ZONE]
        if not zones:
            return None, "", "", []
        from ..gcp.api import GcpApi
        from ..gcp.dns import CloudDnsApi, label, zone_leftovers

        inputs = zones[0].get("inputs") or {}
        project = str(inputs.get("project") or ctx.cfg.names.dns_zone_project)
        zone = str(inputs.get("name") or ctx.cfg.names.dns_zone)
        records = [r.get("inputs") or {} for r in resources if r.get("type") == _RECORD]
        ours = {(str(r.get("name", "")).lower(), str(r.get("type", ""))) for r in records}
        api = ctx.services.dns_api or CloudDnsApi((ctx.services.gcp_api or GcpApi(ctx.cfg)).dns)
        extra, foreign = zone_leftovers(
            str(inputs.get("dnsName", "")),
            ours,
            [str(r.get("name", "")) for r in records],
            api.list_records(project, zone),
        )
        if foreign and not ctx.options.force:
            raise UserError(
                f"the Cloud DNS zone {project}/{zone} that deploy created holds records it "
                f"did not make: {', '.join(label(r) for r in foreign)}",
                "move or delete them, or re-run with --force to delete them with the zone",
            )
        if foreign:
            ctx.reporter.step(
                f"--force: deleting records the stack did not make in {zone}: "
                f"{', '.join(label(r) for r in foreign)}"
            )
        return api, project, zone, extra + foreign

    def destroy(self, ctx: PhaseContext) -> None:
        from pulumi import automation as auto

        cfg, opts, rep = ctx.cfg, ctx.options, ctx.reporter
        handle = open_stack(cfg, opts, ctx.services, create=False)
        if handle is None:
            rep.step("No Pulumi stack: nothing to destroy")
            restore_audit_configs(ctx)  # a destroy that stopped after the stack went
            return
        resources = exported_resources(handle)
        protected = protected_resources(resources)
        if protected:
            if not opts.force:
                self.check_destroy(ctx)
            rep.step(f"--force: lifting deletion protection on {', '.join(protected)}")
            unprotected = with_github_ids(ctx).model_copy(
                update={"deletion_protection": False, "force_destroy_buckets": True}
            )
            lifted = open_stack(
                cfg,
                opts,
                ctx.services,
                program_cfg=unprotected,
                create=False,
                audit_prior=audit_prior(ctx),
            )
            assert lifted is not None
            configure(lifted, cfg, rep, ctx.paused)
            _up(lifted, cfg, rep, opts.verbose, op="unprotect", sleep=ctx.services.sleep)
        # Cloud DNS refuses to delete a zone with records in it: clear what Pulumi does not
        # hold first (its own records go before the zone, in dependency order).
        dns_api, zone_project, zone, leftovers = self._zone_leftovers(ctx, resources)
        if leftovers:
            from ..gcp.dns import label

            rep.step(f"Deleting {', '.join(label(r) for r in leftovers)} from the zone {zone}")
            dns_api.delete_records(zone_project, zone, leftovers)
        log = log_path(cfg, "destroy")
        tracker = EventTracker(rep, total=len(resources) or None)
        rep.step(f"Destroying {len(resources)} resources")
        with log.open("w") as f:

            def on_output(line: str) -> None:
                f.write(line + "\n")
                rep.log(line)

            try:
                run_interruptible(
                    lambda: handle.stack.destroy(
                        on_event=tracker, on_output=on_output, color="never"
                    ),
                    rep,
                )
            except auto.CommandError as e:
                f.flush()
                raise engine_failure(cfg, e, "destroy", tracker, log) from None
        restore_audit_configs(ctx)

    def purge(self, ctx: PhaseContext) -> dict[str, Any]:
        """destroy --purge-state: drop the (now empty) stack and its history from the backend."""
        handle = open_stack(ctx.cfg, ctx.options, ctx.services, create=False)
        if handle is None:
            return {"stack": "absent"}
        ctx.reporter.step(f"Removing the stack {handle.stack.name} from {handle.state_url}")
        handle.stack.workspace.remove_stack(handle.stack.name)
        return {"stack": "removed"}
