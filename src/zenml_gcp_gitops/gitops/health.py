"""Wait for the Argo CD applications, wave by wave, and explain failures.

One line per app per change (wave, sync/health, elapsed). A wave that does not become
Synced+Healthy within its timeout, or an app that stays Degraded, ends the wait with a
diagnosis: the app's conditions, the last operation message and the unhealthy resources
with their recent Events, and an error that names the app and the likely fix.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import PhaseError
from ..polling import poll_until

if TYPE_CHECKING:
    from ..config import DeploymentConfig
    from ..outputs import InfraOutputs
    from ..phases.base import Reporter
    from ..run_options import RunOptions
    from .kube import Kube
    from .render import Rendered

APP_API = "argoproj.io/v1alpha1"


@dataclass
class WaitOptions:
    wave_timeout: float = 900.0  # per wave: cert issuance and load balancers take minutes
    poll: float = 5.0
    degraded_grace: float = 180.0  # Argo retries with backoff; Degraded may be transient
    teardown_timeout: float = 900.0

    @classmethod
    def from_options(cls, options: RunOptions) -> WaitOptions:
        o = cls()
        for key in ("wave_timeout", "poll", "degraded_grace", "teardown_timeout"):
            value = getattr(options, key)
            if value is not None:
                setattr(o, key, float(value))
        return o


@dataclass
class AppState:
    name: str
    wave: int
    sync: str
    health: str
    phase: str | None
    message: str
    stale: bool = False  # the verdict is for an older spec (see application-health.lua)

    @property
    def ready(self) -> bool:
        return (
            self.sync == "Synced"
            and self.health == "Healthy"
            and self.phase != "Running"
            and not self.stale
        )

    @property
    def failed(self) -> bool:
        return self.health == "Degraded" or self.phase in ("Failed", "Error")

    def line(self, elapsed: float) -> str:
        op = f" [{self.phase}]" if self.phase and self.phase != "Succeeded" else ""
        op += " [stale]" if self.stale else ""
        msg = f"  {self.message[:100]}" if self.message and not self.ready else ""
        return (
            f"wave {self.wave}  {self.name:<30} {self.sync}/{self.health}{op}  {int(elapsed)}s{msg}"
        )


def _empty(v: Any) -> bool:
    return v is None or v == "" or v is False or v == {} or v == []


def _same(a: Any, b: Any) -> bool:
    """Equal, where Argo CD may omit empty fields on one side (as in the Lua check)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return all(_same(a.get(k), b.get(k)) for k in set(a) | set(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if _empty(a) and _empty(b):
        return True
    return bool(a == b)


def read_state(app: dict[str, Any] | None, name: str, wave: int) -> AppState:
    if app is None:
        return AppState(name, wave, "Missing", "Missing", None, "not created yet")
    status = app.get("status") or {}
    op = status.get("operationState") or {}
    health = status.get("health") or {}
    sync = status.get("sync") or {}
    compared = sync.get("comparedTo") or {}
    spec = app.get("spec") or {}
    # Same guard as the Lua health check: a verdict about another source is not about us.
    stale = compared.get("source") != spec.get("source") or compared.get(
        "destination", spec.get("destination")
    ) != spec.get("destination")
    return AppState(
        name=name,
        wave=wave,
        sync=sync.get("status") or "Unknown",
        health=health.get("status") or "Unknown",
        phase=op.get("phase"),
        message=op.get("message") or health.get("message") or "",
        stale=stale,
    )


# (any of these words, and all of these words) in the diagnosis -> the likely fix
_FIXES: list[tuple[tuple[str, ...], tuple[str, ...], str]] = [
    (
        ("imagepullbackoff", "errimagepull"),
        (),
        "an image cannot be pulled: check the chart version and the nodes' egress (Cloud NAT)",
    ),
    (
        ("secretsyncederror", "could not get secret", "permissiondenied", "secretmanager"),
        (),
        "External Secrets cannot read Secret Manager: check the ESO Workload Identity binding and that the secret has a version",
    ),
    (
        ("secret",),
        ("not found",),
        "a Secret the chart needs is missing: check the ExternalSecrets of the workloads app (wave 1)",
    ),
    (
        ("not permitted in project",),
        (),
        "the AppProject does not allow a resource, namespace or repo this app needs",
    ),
    (
        ("chart", "repository", "helm"),
        (),
        "Argo CD cannot fetch a chart: check the AppProject sourceRepos and the cluster's egress",
    ),
    (
        ("challenge", "acme", "certificate", "order"),
        (),
        "the TLS certificate is not issued yet: check that the host resolves to the static IP and port 80 reaches the gateway",
    ),
    (
        ("quota", "insufficient", "unschedulable"),
        (),
        "the cluster lacks capacity or quota: check the Autopilot quotas of the project",
    ),
    (
        ("crashloopbackoff", "back-off restarting"),
        (),
        "a pod keeps crashing: read its logs (database credentials and Cloud SQL reachability first)",
    ),
]


def likely_fix(texts: list[str]) -> str:
    blob = " ".join(texts).lower()
    for any_of, all_of, fix in _FIXES:
        if any(w in blob for w in any_of) and all(w in blob for w in all_of):
            return fix
    return (
        "inspect it with `zenml-gcp-gitops argocd` (UI) or `kubectl -n argocd describe application`"
    )


def diagnose(kube: Kube, app: dict[str, Any] | None, name: str) -> list[str]:
    """Lines that explain why an app is not Healthy."""
    if app is None:
        return [
            f"{name}: the Application does not exist; the root app has not created it (check the root app's conditions)"
        ]
    status = app.get("status") or {}
    lines = [
        f"{name}: sync {(status.get('sync') or {}).get('status')}, health {(status.get('health') or {}).get('status')}"
    ]
    for cond in status.get("conditions") or []:
        lines.append(f"  condition {cond.get('type')}: {cond.get('message')}")
    op = status.get("operationState") or {}
    if op:
        lines.append(f"  last operation {op.get('phase')}: {op.get('message')}")
    for res in status.get("resources") or []:
        health = (res.get("health") or {}).get("status")
        if health in (None, "Healthy") and res.get("status") in (None, "Synced"):
            continue
        where = f"{res.get('namespace')}/" if res.get("namespace") else ""
        msg = (res.get("health") or {}).get("message") or ""
        lines.append(
            f"  {res.get('kind')} {where}{res.get('name')}: {res.get('status')}/{health} {msg}".rstrip()
        )
        for event in kube.events_for(
            res.get("kind", ""), res.get("name", ""), res.get("namespace")
        ):
            lines.append(f"    event {event}")
    return lines


def wait_for_apps(
    kube: Kube,
    cfg: DeploymentConfig,
    rendered: Rendered,
    reporter: Reporter | None = None,
    opts: WaitOptions | None = None,
    sleep: Any = time.sleep,
    clock: Any = time.monotonic,
    timings: list[dict[str, Any]] | None = None,
) -> list[AppState]:
    """Block until every child app is Synced and Healthy, wave by wave. `timings` gets how
    long each wave took (the plan's estimate prefers these)."""
    opts = opts or WaitOptions()
    final: list[AppState] = []
    start = clock()
    for wave in sorted({a.wave for a in rendered.apps}):
        began = clock()
        apps = [a for a in rendered.apps if a.wave == wave]
        if reporter is not None:
            reporter.step(f"Wave {wave}: {', '.join(a.name for a in apps)}")
        wait = _WaveWait(kube, cfg, apps, wave, len(rendered.apps), final, reporter, opts)
        wait.start, wait.clock = start, clock
        poll_until(
            wait.settled,
            timeout=opts.wave_timeout,
            interval=opts.poll,
            sleep=sleep,
            clock=clock,
            on_timeout=wait.timed_out,
        )
        final.extend(wait.states)
        if timings is not None:
            timings.append({"wave": wave, "duration_s": round(clock() - began, 2)})
    return final


class _WaveWait:
    """One wave's poll: read the apps, report changes, fail fast on a lasting Degraded."""

    def __init__(
        self,
        kube: Kube,
        cfg: DeploymentConfig,
        apps: list[Any],
        wave: int,
        total: int,
        before: list[AppState],
        reporter: Reporter | None,
        opts: WaitOptions,
    ) -> None:
        self.kube, self.apps, self.wave, self.total = kube, apps, wave, total
        self.ns = cfg.names.namespaces["argocd"]
        self.before, self.reporter, self.opts = before, reporter, opts
        self.shown: dict[str, str] = {}
        self.degraded_since: dict[str, float] = {}
        self.states: list[AppState] = []
        self.raw: dict[str, Any] = {}
        self.start = 0.0
        self.clock: Any = time.monotonic

    def settled(self) -> bool | None:
        now = self.clock()
        elapsed = now - self.start
        rep = self.reporter
        self.raw = {
            a.name: self.kube.get(APP_API, "Application", a.name, self.ns) for a in self.apps
        }
        self.states = [read_state(self.raw[a.name], a.name, self.wave) for a in self.apps]
        for s in self.states:
            key = f"{s.sync}/{s.health}/{s.phase}"
            if self.shown.get(s.name) != key and rep is not None:
                rep.log(s.line(elapsed))
            self.shown[s.name] = key
            if s.failed:
                self.degraded_since.setdefault(s.name, now)
            else:
                self.degraded_since.pop(s.name, None)
        if rep is not None:
            done = sum(s.ready for s in self.before) + sum(s.ready for s in self.states)
            rep.progress(done, self.total, f"wave {self.wave}")
        if all(s.ready for s in self.states):
            return True
        grace = self.opts.degraded_grace
        for s in self.states:
            if s.name in self.degraded_since and now - self.degraded_since[s.name] >= grace:
                raise _failure(self.kube, s, self.raw[s.name], rep, False, self.opts.wave_timeout)
        return None

    def timed_out(self) -> PhaseError:
        culprit = next(s for s in self.states if not s.ready)
        return _failure(
            self.kube, culprit, self.raw[culprit.name], self.reporter, True, self.opts.wave_timeout
        )


def _failure(
    kube: Kube,
    state: AppState,
    app: dict[str, Any] | None,
    reporter: Reporter | None,
    timed_out: bool,
    timeout: float,
) -> PhaseError:
    lines = diagnose(kube, app, state.name)
    for line in lines:
        if reporter is not None:
            reporter.log(line)
    what = (
        f"did not become Synced and Healthy within {int(timeout)}s"
        if timed_out
        else f"is {state.health}"
    )
    detail = f": {state.message}" if state.message else ""
    return PhaseError(
        f"Argo CD application {state.name} (wave {state.wave}) {what}{detail}",
        likely_fix(lines) + "; re-running deploy resumes the wait",
    )


def _ingress_addresses(kube: Kube, cfg: DeploymentConfig) -> tuple[str, list[str]]:
    n = cfg.names
    if cfg.ingress == "gateway":
        gw = kube.get("gateway.networking.k8s.io/v1", "Gateway", n.gateway, n.namespaces["gateway"])
        addrs = [a.get("value") for a in ((gw or {}).get("status") or {}).get("addresses") or []]
        return f"Gateway {n.namespaces['gateway']}/{n.gateway}", [str(a) for a in addrs if a]
    svc_name = f"{n.helm_releases['ingress_nginx']}-controller"
    svc = kube.get("v1", "Service", svc_name, n.namespaces["ingress"])
    ingress = (((svc or {}).get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return f"Service {n.namespaces['ingress']}/{svc_name}", [
        str(i["ip"]) for i in ingress if i.get("ip")
    ]


def check_ingress_address(
    kube: Kube,
    cfg: DeploymentConfig,
    infra: InfraOutputs,
    opts: WaitOptions | None = None,
    sleep: Any = time.sleep,
    clock: Any = time.monotonic,
) -> str:
    """The address of the Gateway (or the nginx LoadBalancer) must be the reserved static IP.

    Waits (up to one wave timeout) while the load balancer has no address yet; a different
    address fails at once: the hostnames would point at the wrong place."""
    opts = opts or WaitOptions()
    n = cfg.names
    what, addrs = "", list[str]()

    def wrong() -> PhaseError:
        got = ", ".join(addrs) or f"no address after {int(opts.wave_timeout)}s"
        return PhaseError(
            f"{what} has {got}, not the reserved static IP {infra.ingress_ip}",
            f"the hosts {infra.zenml_host} and {infra.mlflow_host} point at {infra.ingress_ip}; check that the "
            f"address {n.ingress_ip} exists in {infra.region} and is not used by another load balancer",
        )

    def address() -> str | None:
        nonlocal what, addrs
        what, addrs = _ingress_addresses(kube, cfg)
        if infra.ingress_ip in addrs:
            return infra.ingress_ip
        if addrs:  # another address fails at once: waiting will not change it
            raise wrong()
        return None

    return poll_until(
        address,
        timeout=opts.wave_timeout,
        interval=opts.poll,
        sleep=sleep,
        clock=clock,
        on_timeout=wrong,
    )


def app_statuses(kube: Kube, cfg: DeploymentConfig) -> list[dict[str, Any]]:
    """Sync and health of every Application of the stack (root first)."""
    ns = cfg.names.namespaces["argocd"]
    out = []
    names = [cfg.names.argocd_root_app, *cfg.names.argocd_apps.values()]
    for name in names:
        app = kube.get(APP_API, "Application", name, ns)
        if (
            app is None
            and name == cfg.names.argocd_apps["ingress_nginx"]
            and cfg.ingress != "nginx"
        ):
            continue
        wave = int(
            ((app or {}).get("metadata", {}).get("annotations") or {}).get(
                "argocd.argoproj.io/sync-wave", 0
            )
            or 0
        )
        s = read_state(app, name, wave)
        out.append(
            {"name": name, "wave": wave, "sync": s.sync, "health": s.health, "message": s.message}
        )
    return out


def url_reachable(url: str, timeout: float = 5.0) -> bool:
    """True if the URL answers (any status below 500) over HTTPS."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status) < 500
    except urllib.error.HTTPError as e:
        return e.code < 500
    except (urllib.error.URLError, TimeoutError, OSError, ValueError):
        return False
