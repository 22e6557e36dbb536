"""A first deploy as a graph of steps: what each step waits for and how long it takes.

The engine runs its phases in order (`PHASE_ORDER`, the order of `engine.default_phases`).
Inside infra the Pulumi engine creates a resource as soon as its dependencies exist; inside
gitops Argo CD is installed, then each app syncs once every app of a lower sync wave is
healthy (the apps of a wave side by side). `first_deploy` is the longest path through this
graph, and `critical_path` the steps on it, each with the source of its duration: the typical
time of `durations`, or what this deployment's last deploy measured when its record has it
(`Measured`).

`overlap=True` is how the engine runs (`phases/headstart.py`; not with a GitOps repo): Argo CD
starts when the program's handoff component exists, i.e. when the resources it waits for do
(`pulumi_program/handoff.py`), and the apps that read database outputs start once infra has
ended, as the gitops phase adds them then.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .durations import (
    _SQL,
    APP_TIMES,
    DEFAULT_TIME,
    PHASE_TIMES,
    Typical,
    _graph,
    _range,
    typical_of,
)

PHASE_ORDER = ("preflight", "infra", "gitops", "register", "ci")
ENGINE_OVERLAP = True  # gitops starts when its inputs exist (`gitops.database_free`)


@dataclass(frozen=True)
class Step:
    key: str
    phase: str
    name: str
    type: str
    min_s: float
    max_s: float
    source: str
    needs: tuple[str, ...] = ()


@dataclass
class Measured:
    """Durations the last deploy of this deployment measured, read from its record."""

    where: str
    types: dict[str, tuple[float, float, int]] = field(default_factory=dict)  # min, max, count
    phases: dict[str, float] = field(default_factory=dict)  # preflight, register, ci
    argocd_install: float | None = None
    waves: dict[int, float] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: Any, where: str) -> Measured | None:
        """None when the record measured nothing a first deploy estimate can use."""
        if record is None:
            return None
        m = cls(where)
        infra = record.phases.get("infra")
        for row in ((infra.outputs if infra else None) or {}).get("resource_durations") or []:
            longest = float(row.get("max_s", 0))
            m.types[str(row["type"])] = (
                float(row.get("min_s", row.get("mean_s", longest))),
                longest,
                int(row.get("count", 0)),
            )
        for name in ("preflight", "register", "ci"):
            rec = record.phases.get(name)
            if rec is not None and rec.status == "succeeded" and rec.duration_s is not None:
                m.phases[name] = float(rec.duration_s)
        gitops = record.phases.get("gitops")
        timed = ((gitops.outputs if gitops else None) or {}).get("durations") or {}
        if timed.get("argocd_install_s") is not None:
            m.argocd_install = float(timed["argocd_install_s"])
        for w in timed.get("waves") or []:
            m.waves[int(w["wave"])] = float(w["duration_s"])
        if not (m.types or m.phases or m.argocd_install is not None or m.waves):
            return None
        return m

    def source(self, what: str) -> str:
        return f"measured: {what} in the last deploy ({self.where})"


def _timed(fixed: Typical, measured: float | None, m: Measured | None, what: str) -> Typical:
    if measured is None or m is None:
        return fixed
    return Typical(measured, measured, m.source(what))


def _wave(app: dict[str, Any]) -> int:
    ann = (app.get("metadata") or {}).get("annotations") or {}
    return int(ann.get("argocd.argoproj.io/sync-wave", 0))


def wave_table(
    applications: list[dict[str, Any]],
    app_keys: dict[str, str],
    db_apps: Iterable[str] = (),
    measured: Measured | None = None,
) -> list[dict[str, Any]]:
    """Argo CD apps grouped by wave; a wave lasts as long as its slowest app."""
    db = set(db_apps)
    waves: dict[int, list[dict[str, Any]]] = {}
    for app in applications:
        waves.setdefault(_wave(app), []).append(app)
    out = []
    for wave in sorted(waves):
        names = sorted(str(a["metadata"]["name"]) for a in waves[wave])
        times = [APP_TIMES.get(app_keys.get(n, ""), DEFAULT_TIME) for n in names]
        if measured is not None:  # a wave's measure bounds each of its apps
            times = [_timed(t, measured.waves.get(wave), measured, f"wave {wave}") for t in times]
        slowest = max(times, key=lambda t: t.max_s)
        t = Typical(max(x.min_s for x in times), slowest.max_s, slowest.source)
        out.append(
            {
                "wave": wave,
                "applications": names,
                "min_s": t.min_s,
                "max_s": t.max_s,
                "source": t.source,
                "needs_database": any(app_keys.get(n) in db for n in names),
                "apps": [
                    {"name": n, **_t(x), "needs_database": app_keys.get(n) in db}
                    for n, x in zip(names, times, strict=True)
                ],
            }
        )
    return out


def database_side(resources: list[dict[str, Any]]) -> set[str]:
    """The Cloud SQL instances and every resource that waits for one (databases, users...)."""
    custom, deps = _graph(resources)
    side = {u for u, r in custom.items() if r["type"] == _SQL}
    grew = True
    while grew:
        more = {u for u, d in deps.items() if u not in side and d & side}
        side |= more
        grew = bool(more)
    return side


def handoff_needs(resources: list[dict[str, Any]]) -> tuple[str, ...]:
    """The custom resources the program's handoff component waits for: those it depends on
    and, for a component it depends on, every custom resource inside it."""
    from ..outputs import HANDOFF_TYPE

    by_urn = {r["urn"]: r for r in resources}
    handoff = next((r for r in resources if r["type"] == HANDOFF_TYPE), None)
    if handoff is None:
        return ()
    deps = set(handoff.get("depends_on") or [])
    custom, _ = _graph(resources)

    def inside(urn: str) -> bool:
        at: str | None = urn
        while at is not None:
            if at in deps:
                return True
            at = (by_urn.get(at) or {}).get("parent")
        return False

    return tuple(sorted(u for u in custom if inside(u)))


def deploy_steps(
    resources: list[dict[str, Any]],
    waves: list[dict[str, Any]],
    dns_steps: list[str],
    *,
    overlap: bool = ENGINE_OVERLAP,
    measured: Measured | None = None,
) -> list[Step]:
    """Every step of a first deploy with the steps it waits for."""

    def phase_time(name: str) -> Typical:
        return _timed(
            PHASE_TIMES[name], (measured.phases if measured else {}).get(name), measured, name
        )

    steps = [Step("preflight", "preflight", "preflight", "phase", **_t(phase_time("preflight")))]
    custom, deps = _graph(resources)
    for urn, r in custom.items():
        t = typical_of(r)
        got = measured.types.get(r["type"]) if measured else None
        if got is not None and measured is not None:
            t = Typical(got[0], got[1], measured.source(f"{got[2]} x {r['type']}"))
        after = tuple(sorted(deps[urn])) or ("preflight",)
        steps.append(Step(urn, "infra", str(r["name"]), str(r["type"]), **_t(t), needs=after))
    everything = tuple(sorted(custom)) or ("preflight",)
    before = (handoff_needs(resources) or everything) if overlap else everything
    for s in dns_steps:
        steps.append(Step(s, "gitops", s, "dns", **_t(PHASE_TIMES[s]), needs=before))
        before = (s,)
    install = _timed(
        PHASE_TIMES["argocd_install"],
        measured.argocd_install if measured else None,
        measured,
        "Argo CD install",
    )
    steps.append(Step("argocd_install", "gitops", "Argo CD", "argocd", **_t(install), needs=before))
    # An app syncs once Argo CD runs and every app of a lower wave is healthy (the waves
    # gate); with overlap, an app that reads the database once the gitops phase adds it.
    lower: tuple[str, ...] = ("argocd_install",)
    apps: list[str] = []
    for w in waves:
        keys = []
        for a in w.get("apps") or [{**w, "name": ", ".join(w["applications"])}]:
            needs = lower + (everything if overlap and a["needs_database"] else ())
            key = f"app {a['name']}"
            t = Typical(a["min_s"], a["max_s"], a["source"])
            name = f"{a['name']} (wave {w['wave']})"
            steps.append(Step(key, "gitops", name, "application", **_t(t), needs=needs))
            keys.append(key)
        lower = tuple(keys)
        apps += keys
    last_gitops = tuple(apps or ["argocd_install"]) + (everything if overlap else ())
    steps.append(
        Step(
            "register",
            "register",
            "register",
            "phase",
            **_t(phase_time("register")),
            needs=last_gitops,
        )
    )
    steps.append(Step("ci", "ci", "ci", "phase", **_t(phase_time("ci")), needs=("register",)))
    return steps


def estimate_duration(
    resources: list[dict[str, Any]],
    applications: list[dict[str, Any]],
    app_keys: dict[str, str],
    dns_wait: bool = False,
    new_zone: bool = False,
    dns01: bool = False,
    *,
    db_apps: list[str] | None = None,
    measured: Measured | None = None,
    overlap: bool | None = None,
) -> dict[str, Any]:
    """The `duration` section of the plan contract (seconds): the longest path through the
    deploy's step graph (`estimate.graph`). `dns_wait`: the deploy waits for public DNS (a
    domain in a Cloud DNS zone); `new_zone`: the zone is new, so it waits for the registrar's
    delegation instead; `dns01`: certificates by the DNS-01 challenge. `db_apps`: the apps
    that read database outputs; `measured`: durations preferred over the table."""
    overlap = ENGINE_OVERLAP if overlap is None else overlap
    waves = wave_table(applications, app_keys, db_apps or [], measured)
    dns_steps = []
    if dns_wait:
        dns_steps.append("dns_delegation" if new_zone else "dns_wait")
    if dns01:
        dns_steps.append("dns01")
    steps = deploy_steps(resources, waves, dns_steps, overlap=overlap, measured=measured)
    low, _, done_min = longest(steps, "min_s")
    high, path, done_max = longest(steps, "max_s")
    db = database_side(resources)
    other: list[Step] = []
    if overlap and db:  # the database's line of work, beside the critical path
        # up to the last app that reads the database, or the last database resource
        users = [s.key for s in steps if s.type == "application" and db & set(s.needs)]
        last = max(sorted(users or db), key=lambda k: done_max.get(k, 0.0))
        other = [s for s in chain(steps, done_max, last) if s not in path]
    phases: list[dict[str, Any]] = []
    for name in ("preflight", "infra", "gitops", "register", "ci"):
        mine = [s for s in steps if s.phase == name]
        row: dict[str, Any] = {"phase": name}
        for weight, done in (("min_s", done_min), ("max_s", done_max)):
            start = min(done[s.key] - getattr(s, weight) for s in mine)
            row[weight] = max(done[s.key] for s in mine) - start
        if name == "gitops":
            row["dns"] = [
                {"step": s, **_range(PHASE_TIMES[s]), "source": PHASE_TIMES[s].source}
                for s in dns_steps
            ]
        phases.append(row)
    return {
        "first_deploy": {"min_s": low, "max_s": high},
        "overlap": overlap,
        "measured": measured.where if measured is not None else None,
        "phases": phases,
        "critical_path": [
            {
                "urn": s.key,
                "phase": s.phase,
                "type": s.type,
                "name": s.name,
                "min_s": s.min_s,
                "max_s": s.max_s,
                "source": s.source,
            }
            for s in path
        ],
        "sync_waves": waves,
        # when each step of the two lines runs, at the upper bounds (for `timeline`)
        "schedule": [
            {
                "line": "critical" if s in path else "database",
                "phase": s.phase,
                "type": s.type,
                "name": s.name,
                "source": s.source,
                "min_s": s.min_s,
                "max_s": s.max_s,
                "start_s": done_max[s.key] - s.max_s,
                "end_s": done_max[s.key],
            }
            for s in sorted([*path, *other], key=lambda s: (done_max[s.key] - s.max_s, s.key))
        ],
    }


def _t(t: Typical) -> dict[str, Any]:
    return {"min_s": t.min_s, "max_s": t.max_s, "source": t.source}


def longest(steps: list[Step], weight: str) -> tuple[float, list[Step], dict[str, float]]:
    """The longest path (by `min_s` or `max_s`) and each step's finish time on it."""
    by_key = {s.key: s for s in steps}
    finish: dict[str, float] = {}
    via: dict[str, str | None] = {}
    for s in ordered(steps):
        best, best_dep = 0.0, None
        for d in sorted(s.needs):
            if d in finish and finish[d] > best:
                best, best_dep = finish[d], d
        finish[s.key] = best + float(getattr(s, weight))
        via[s.key] = best_dep
    if not finish:
        return 0.0, [], finish
    end = max(finish, key=lambda k: finish[k])
    path = [end]
    while via.get(path[-1]):
        path.append(str(via[path[-1]]))
    return finish[end], [by_key[k] for k in reversed(path)], finish


def chain(steps: list[Step], finish: dict[str, float], key: str) -> list[Step]:
    """The steps that lead to `key` on its longest path (each after the need that ends last)."""
    by_key = {s.key: s for s in steps}
    out = [by_key[key]]
    while True:
        needs = [d for d in sorted(out[-1].needs) if d in finish]
        if not needs:
            return list(reversed(out))
        out.append(by_key[max(needs, key=lambda d: finish[d])])


def ordered(steps: list[Step]) -> list[Step]:
    """The steps with each after all it needs (resources come in dependency order)."""
    by_key = {s.key: s for s in steps}
    out: list[Step] = []
    seen: set[str] = set()

    def visit(key: str, stack: frozenset[str]) -> None:
        if key in seen or key not in by_key or key in stack:
            return
        for d in sorted(by_key[key].needs):
            visit(d, stack | {key})
        seen.add(key)
        out.append(by_key[key])

    for s in steps:
        visit(s.key, frozenset())
    return out


def timeline(duration: dict[str, Any], width: int = 48) -> str:
    """The schedule of a `duration` section as a text chart at the upper bounds (docs/deploy.md
    shows the default config's): the critical path (`#`) and, when gitops overlaps infra, the
    database's line of work beside it (`=`), each step from its start to its end."""
    from .durations import fmt_duration

    total = duration["first_deploy"]["max_s"] or 1.0
    rows = []
    for s in duration.get("schedule") or []:
        start = round(s["start_s"] / total * width)
        end = max(start + 1, round(s["end_s"] / total * width))
        mark = "#" if s["line"] == "critical" else "="
        label = f"{s['phase']:<9} {s['name'][:30]:<30}"
        rows.append(
            f"{label} {' ' * start}{mark * (end - start)}{' ' * (width - end)} {fmt_duration(s['end_s']):>7}"
        )
    return "\n".join(rows)
