"""The `gitops` phase: install Argo CD, hand it the app-of-apps, wait until all is healthy.

`destroy` is the teardown the engine's destroy calls before `pulumi destroy`: it removes the
apps with cascade and waits until the load balancers and disks they made are gone, so the
VPC can be deleted without orphans.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..gitops.health import WaitOptions
    from ..gitops.kube import Kube
    from ..gitops.render import Rendered
    from ..outputs import InfraOutputs
    from .base import PhaseContext, Reporter


DNS_WAIT_TIMEOUT = 900.0  # NS changes at a registrar can take a while to be seen


class Prefixed:
    """A reporter whose lines say which line of work they come from."""

    def __init__(self, inner: Reporter, prefix: str) -> None:
        self.inner, self.prefix = inner, prefix

    def step(self, message: str) -> None:
        self.inner.step(self.prefix + message)

    def progress(self, done: int, total: int | None, current: str | None = None) -> None:
        pass  # the progress bar is infra's while both run

    def log(self, line: str) -> None:
        self.inner.log(self.prefix + line)


def wait_for_dns(
    ctx: PhaseContext, sleep: Callable[[float], None] | None = None
) -> dict[str, Any] | None:
    """With Cloud DNS, wait until public resolution sees the records, so cert-manager's
    challenge can succeed; `skip_dns_wait` opts out. Returns what was seen."""
    from ..gcp.dns import DohResolver, wait_for_records

    cfg, opts = ctx.cfg, ctx.options
    if not cfg.names.dns_zone or opts.skip_dns_wait:
        return None
    infra = ctx.infra
    hosts = {infra.zenml_host: infra.ingress_ip, infra.mlflow_host: infra.ingress_ip}
    if infra.dns_name_servers:  # a zone the stack created: the registrar must delegate to it
        ns = ", ".join(n.rstrip(".") for n in infra.dns_name_servers)
        ctx.reporter.step(f"Set the NS records of {cfg.domain} at your registrar to: {ns}")
    ctx.reporter.step(f"Waiting until public DNS resolves {', '.join(hosts)}")
    seen = wait_for_records(
        hosts,
        ctx.services.dns_resolver or DohResolver(),
        timeout=opts.dns_wait_timeout,
        interval=opts.dns_wait_interval,
        reporter=ctx.reporter,
        # a created zone's (to set at the registrar), else the existing zone's from preflight
        name_servers=infra.dns_name_servers
        or ctx.recorded.get("preflight", {}).get("dns_name_servers"),
        sleep=sleep or time.sleep,
    )
    return {"resolved": seen}


def _first_durations(
    ctx: PhaseContext, installed_s: float, waves: list[dict[str, Any]]
) -> dict[str, Any]:
    """How long the Argo CD install and each wave took in the run that first completed this
    phase: a later run finds the apps already synced, which says nothing about a first deploy.
    The waves a head start waited for were timed there (here they were synced already)."""
    previous = ctx.recorded.get("gitops")
    if previous:
        return dict(previous.get("durations") or {})
    early = _head_start_result(ctx) or {}
    if early.get("argocd_install_s") is not None:
        installed_s = early["argocd_install_s"]
    timed = {int(w["wave"]): w for w in waves}
    timed.update({int(w["wave"]): w for w in early.get("waves") or []})
    return {"argocd_install_s": installed_s, "waves": [timed[k] for k in sorted(timed)]}


def _head_start_result(ctx: PhaseContext) -> dict[str, Any] | None:
    """What the head start measured before it ended or was stopped at infra's end."""
    hs = getattr(ctx, "head_start", None)
    return hs.notes if hs is not None else None


def _head_start_summary(ctx: PhaseContext) -> dict[str, Any]:
    """What this run's gitops did while infra ran: the apps, or why it waited instead."""
    hs = ctx.head_start
    if hs is None:
        return {"ran": False, "why": "not this run (see `deploy --help`, --overlap)"}
    if hs.started and "skipped" not in (hs.result or {}):
        return {"ran": True, "argocd_installed": "argocd_install_s" in hs.notes}
    why = (hs.result or {}).get("skipped") or hs.skipped or "infra ended before the handoff"
    return {"ran": False, "why": why}


def _bootstrap(
    ctx: PhaseContext, kube: Kube, rendered: Rendered, opts: WaitOptions, sleep: Any
) -> None:
    """Argo CD's install and the app-of-apps, with this run's cache, source and reporter."""
    from ..gitops.bootstrap import bootstrap

    bootstrap(
        kube,
        ctx.cfg,
        rendered,
        reporter=ctx.reporter,
        cache_dir=ctx.options.argocd_cache_dir,
        source=ctx.services.argocd_install_source,
        opts=opts,
        sleep=sleep,
    )


class GitopsPhase:
    """Phase protocol implementation. `kube` (or `ctx.services.kube_api_client`, a
    `kubernetes.client.ApiClient`) overrides the cluster connection, e.g. for kmock."""

    name = "gitops"

    def __init__(self, kube: Kube | None = None) -> None:
        self._kube = kube

    def _connect(self, ctx: PhaseContext, infra: InfraOutputs | None = None) -> Kube:
        from ..gitops.kube import Kube, connect

        if self._kube is not None:
            return self._kube
        api_client = ctx.services.kube_api_client
        if api_client is not None:
            return Kube(api_client)
        return connect(infra or ctx.infra, write_kubeconfig_file=ctx.options.write_kubeconfig)

    def head_start(
        self,
        ctx: PhaseContext,
        handoff: dict[str, Any],
        sleep: Callable[[float], None],
        notes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Argo CD and the apps that read no database output, while infra still runs
        (`phases/headstart.py`). `sleep` raises once the other line of work has ended;
        `notes` gets the install's and each wave's time as they are measured."""
        notes = {} if notes is None else notes
        from dataclasses import replace

        from ..gitops.bootstrap import root_app_names
        from ..gitops.database_free import database_free
        from ..gitops.health import WaitOptions, wait_for_apps

        rendered, infra = database_free(ctx.cfg, handoff)
        early = replace(ctx, _infra=infra, reporter=Prefixed(ctx.reporter, "gitops  "))
        keys = {a.key for a in rendered.apps}
        dns = wait_for_dns(early, sleep)
        kube = self._connect(early, infra)
        others = sorted(root_app_names(kube, ctx.cfg) - {a.name for a in rendered.apps})
        if others:
            # applying a smaller app-of-apps would make Argo CD prune those apps
            return {"skipped": f"the app-of-apps already has {', '.join(others)}"}
        opts = WaitOptions.from_options(ctx.options)
        began = time.monotonic()
        sleep(0)
        _bootstrap(early, kube, rendered, opts, sleep)
        installed_s = round(time.monotonic() - began, 2)
        notes["argocd_install_s"] = installed_s
        waves: list[dict[str, Any]] = notes.setdefault("waves", [])
        wait_for_apps(kube, ctx.cfg, rendered, early.reporter, opts, sleep=sleep, timings=waves)
        return {
            "applications": sorted(keys),
            "argocd_install_s": installed_s,
            "waves": waves,
            **({"dns": dns} if dns is not None else {}),
        }

    def run(self, ctx: PhaseContext) -> dict[str, Any]:
        from ..gitops.bootstrap import apply_stack
        from ..gitops.health import WaitOptions, check_ingress_address, wait_for_apps
        from ..gitops.render import render

        rendered = render(ctx.cfg, ctx.infra, paused=ctx.paused)
        dns = wait_for_dns(ctx)
        kube = self._connect(ctx)
        opts = WaitOptions.from_options(ctx.options)
        began = time.monotonic()
        if "argocd_install_s" in (_head_start_result(ctx) or {}):
            # this run's head start installed Argo CD a few minutes ago: hand over the stack
            ctx.reporter.step("Handing the whole stack to Argo CD")
            apply_stack(kube, ctx.cfg, rendered, ctx.reporter, opts)
        else:
            _bootstrap(ctx, kube, rendered, opts, time.sleep)
        installed_s = round(time.monotonic() - began, 2)
        # an upgrade this deploy started (the engine backed up first) and has not finished
        upgrade = ctx.operations.get("upgrade") or {}
        if upgrade.get("status") != "pending":
            upgrade = {}
        zenml = next((c for c in upgrade.get("changes", []) if c["key"] == "zenml_chart"), None)
        if zenml is not None:
            from ..ops.upgrade import watch_migration

            ctx.reporter.step(f"ZenML {zenml['from']} -> {zenml['to']}: database migration")
            watch_migration(
                kube, ctx.cfg, zenml["to"], upgrade.get("backup_id"),
                timeout=opts.wave_timeout * 2, poll=opts.poll, log=ctx.reporter.log,
            )  # fmt: skip
        waves: list[dict[str, Any]] = []
        wait_for_apps(kube, ctx.cfg, rendered, ctx.reporter, opts, timings=waves)
        gateway_ip = check_ingress_address(kube, ctx.cfg, ctx.infra, opts)
        return {
            "zenml_url": ctx.infra.zenml_url,
            "mlflow_url": ctx.infra.mlflow_url,
            "argocd_namespace": ctx.cfg.names.namespaces["argocd"],
            "argocd_version": rendered.argocd_version,
            "gateway_ip": gateway_ip,
            "applications": [a.name for a in rendered.apps],
            **({"dns": dns} if dns is not None else {}),
            "durations": _first_durations(ctx, installed_s, waves),
            "head_start": _head_start_summary(ctx),
        }

    def status(self, ctx: PhaseContext) -> dict[str, Any]:
        from ..errors import UserError
        from ..gitops.health import app_statuses, url_reachable

        result: dict[str, Any] = {
            "zenml_url": ctx.infra.zenml_url,
            "mlflow_url": ctx.infra.mlflow_url,
            "zenml_reachable": url_reachable(ctx.infra.zenml_url + "/health"),
            "mlflow_reachable": url_reachable(ctx.infra.mlflow_url + "/health"),
        }
        try:
            result["applications"] = app_statuses(self._connect(ctx), ctx.cfg)
        except UserError as e:  # status reports; it never fails on an unreachable cluster
            result["applications"] = []
            result["cluster_error"] = e.message
        return result

    def destroy(self, ctx: PhaseContext) -> None:
        from ..gitops.bootstrap import teardown
        from ..gitops.health import WaitOptions

        injected = self._kube is not None or ctx.services.kube_api_client is not None
        has_infra = ctx._infra is not None or bool(ctx.recorded.get("infra", {}).get("outputs"))
        # a run that died while infra and gitops both ran recorded only the cluster's side
        handoff = ctx.recorded.get("infra", {}).get("handoff")
        if not injected and not has_infra and not handoff:
            return  # infra never produced a cluster: nothing was deployed into one
        if not has_infra and handoff:
            from ..gitops.database_free import pending_database

            kube = self._connect(ctx, pending_database(handoff))
        else:
            kube = self._connect(ctx)
        teardown(kube, ctx.cfg, ctx.reporter, WaitOptions.from_options(ctx.options))
