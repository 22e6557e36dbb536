"""The first-deploy estimate follows the deploy's step graph, and prefers measured durations."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from click.testing import CliRunner

from zenml_gcp_gitops.cli import cli
from zenml_gcp_gitops.config import DeploymentConfig, build_config
from zenml_gcp_gitops.engine import default_phases
from zenml_gcp_gitops.estimate import durations as dur
from zenml_gcp_gitops.estimate import graph as G
from zenml_gcp_gitops.gitops.render import render
from zenml_gcp_gitops.outputs import HANDOFF_TYPE
from zenml_gcp_gitops.phases.gitops import _first_durations
from zenml_gcp_gitops.plan import database_apps, offline_plan, plan_from_run, run_program
from zenml_gcp_gitops.state.record import (
    DeploymentRecord,
    FileRecordStore,
    PhaseRecord,
    local_record_path,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "argocd" / "example"
SQL, GKE = "gcp:sql/databaseInstance:DatabaseInstance", "gcp:container/cluster:Cluster"


def cfg_of(**kw: Any) -> DeploymentConfig:
    return build_config(None, {"project": "my-project-1", "region": "us-central1", **kw})


def _res(urn: str, type_: str, deps: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"urn": urn, "type": type_, "name": urn, "depends_on": list(deps), "parent": None}


_RESOURCES = [
    _res("vpc", "gcp:compute/network:Network"),
    _res("gke", GKE, ("vpc",)),
    _res("sql", SQL, ("vpc",)),
    _res("db", "gcp:sql/database:Database", ("sql",)),
    _res("handoff", HANDOFF_TYPE, ("vpc", "gke")),  # the program's: what gitops starts on
]
_WAVES = [
    {"wave": 0, "applications": ["ops"], "min_s": 45, "max_s": 120, "source": "t", "needs_database": False},
    {"wave": 1, "applications": ["zenml", "mlflow"], "min_s": 90, "max_s": 240, "source": "t", "needs_database": True},
]  # fmt: skip


def test_the_phase_chain_is_the_engines() -> None:
    assert tuple(p.name for p in default_phases()) == G.PHASE_ORDER


def test_sequential_deploy_waits_for_every_resource_before_argo_cd() -> None:
    steps = G.deploy_steps(_RESOURCES, _WAVES, [], overlap=False)
    high, path, _ = G.longest(steps, "max_s")
    t, p = dur.CREATE_TIMES, dur.PHASE_TIMES
    assert [s.key for s in path] == [
        "preflight", "vpc", "sql", "db", "argocd_install", "app ops", "app zenml, mlflow",
        "register", "ci",
    ]  # fmt: skip
    infra = (
        t["gcp:compute/network:Network"].max_s + t[SQL].max_s + t["gcp:sql/database:Database"].max_s
    )
    gitops = p["argocd_install"].max_s + 120 + 240
    assert high == p["preflight"].max_s + infra + gitops + p["register"].max_s + p["ci"].max_s


def test_overlap_starts_argo_cd_on_the_handoff_and_holds_database_waves() -> None:
    """With overlap, Argo CD waits for what the program's handoff waits for; the wave whose
    apps read the database waits for all of infra (the gitops phase adds it then)."""
    assert G.database_side(_RESOURCES) == {"sql", "db"}
    steps = G.deploy_steps(_RESOURCES, _WAVES, [], overlap=True)
    by_key = {s.key: s for s in steps}
    assert set(by_key["argocd_install"].needs) == {"vpc", "gke"}
    assert {"vpc", "gke", "sql", "db"} <= set(by_key["app zenml, mlflow"].needs)
    assert "sql" not in by_key["app ops"].needs
    high, _, done = G.longest(steps, "max_s")
    sequential, _, _ = G.longest(G.deploy_steps(_RESOURCES, _WAVES, [], overlap=False), "max_s")
    assert high < sequential
    assert done["app zenml, mlflow"] == max(done["app ops"], done["db"], done["gke"]) + 240
    # a plan without the handoff component (an older program) waits for everything
    old = G.deploy_steps(_RESOURCES[:-1], _WAVES, [], overlap=True)
    assert {s.key: s for s in old}["argocd_install"].needs == ("db", "gke", "sql", "vpc")


def test_apps_of_one_wave_count_once_in_the_plan() -> None:
    d = offline_plan(cfg_of())["duration"]
    waves = {w["wave"]: w for w in d["sync_waves"]}
    shared = next(w for w in waves.values() if "zenml-mlflow" in w["applications"])
    zen, ml = dur.APP_TIMES["zenml_server"], dur.APP_TIMES["mlflow"]
    times = {a["name"]: a["max_s"] for a in shared["apps"]}
    assert (times["zenml-zenml-server"], times["zenml-mlflow"]) == (zen.max_s, ml.max_s)
    assert shared["max_s"] == max(times.values())  # a wave lasts as long as its slowest app
    # each app is its own step: the servers do not wait for the platform of their wave
    lines = {s["name"]: s["line"] for s in d["schedule"]}
    assert lines["zenml-platform (wave 2)"] == "critical"
    assert lines["zenml-zenml-server (wave 2)"] == "database"
    assert d["overlap"] is True and d["measured"] is None
    # with a GitOps repo Argo CD reads the whole app-of-apps from it: no overlap
    repo = offline_plan(cfg_of(gitops_repo="https://github.com/acme/stack.git"))["duration"]
    assert repo["overlap"] is False
    assert repo["first_deploy"]["max_s"] > d["first_deploy"]["max_s"]


def test_the_apps_that_need_the_database_are_read_from_their_manifests() -> None:
    cfg = build_config(EXAMPLE / "config.yaml", {})
    from zenml_gcp_gitops.outputs import InfraOutputs

    outputs = InfraOutputs.from_mapping(
        __import__("json").loads((EXAMPLE / "outputs.json").read_text())
    )
    needs = set(database_apps(render(cfg, outputs), outputs))
    # the database's objects ride in the server apps; workloads syncs without them
    assert needs == {"zenml_server", "mlflow"}


def _measured_record(cfg: DeploymentConfig) -> DeploymentRecord:
    record = DeploymentRecord.new(cfg)
    record.phases["infra"] = PhaseRecord(
        status="succeeded",
        outputs={
            "outputs": {},
            "resource_durations": [
                {"type": SQL, "count": 1, "min_s": 2000.0, "mean_s": 2000.0, "max_s": 2000.0}
            ],
        },
    )
    record.phases["register"] = PhaseRecord(status="succeeded", duration_s=20.0)
    record.phases["gitops"] = PhaseRecord(
        status="succeeded",
        outputs={
            "durations": {"argocd_install_s": 70.0, "waves": [{"wave": 1, "duration_s": 200.0}]}
        },
    )
    return record


def test_plan_prefers_what_the_last_deploy_measured() -> None:
    cfg = cfg_of()
    run = run_program(cfg)
    typical = plan_from_run(cfg, run)["duration"]
    m = G.Measured.from_record(_measured_record(cfg), "record.json")
    assert m is not None
    measured = plan_from_run(cfg, run, measured=m)["duration"]
    sql = next(s for s in measured["critical_path"] if s["type"] == SQL)
    assert (sql["min_s"], sql["max_s"]) == (2000.0, 2000.0)  # much slower: now critical
    assert sql["source"].startswith("measured") and "record.json" in sql["source"]
    wave1 = next(w for w in measured["sync_waves"] if w["wave"] == 1)
    assert wave1["max_s"] == 200.0 and wave1["source"].startswith("measured")
    steps = {s["urn"]: s for s in measured["critical_path"]}
    assert steps["register"]["max_s"] == 20.0
    by_key = {s.key: s for s in G.deploy_steps(_RESOURCES, _WAVES, [], measured=m)}
    assert by_key["argocd_install"].max_s == 70.0
    assert by_key["argocd_install"].source.startswith("measured")
    assert measured["measured"] == "record.json"
    assert measured["first_deploy"]["min_s"] > typical["first_deploy"]["min_s"]
    assert G.Measured.from_record(DeploymentRecord.new(cfg), "x") is None


def test_plan_command_says_it_uses_the_local_record() -> None:
    args = ["plan", "--offline", "--project", "my-project-1", "--region", "us-central1"]
    cfg = cfg_of()
    path = local_record_path(cfg)
    assert not path.exists()
    plain = CliRunner().invoke(cli, args)
    assert plain.exit_code == 0, plain.output
    assert "measured by the last deploy" not in plain.output
    FileRecordStore(path).save(_measured_record(cfg))
    try:
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 0, res.output
        assert "measured by the last deploy" in res.output and str(path) in res.output
    finally:
        path.unlink()


def test_wave_times_are_those_of_the_run_that_first_completed_gitops() -> None:
    waves = [{"wave": 0, "duration_s": 50.0}]
    first = SimpleNamespace(recorded={})
    assert _first_durations(first, 90.0, waves) == {"argocd_install_s": 90.0, "waves": waves}  # type: ignore[arg-type]
    kept = {"argocd_install_s": 90.0, "waves": waves}
    again = SimpleNamespace(recorded={"gitops": {"durations": kept}})
    assert _first_durations(again, 1.0, [{"wave": 0, "duration_s": 0.1}]) == kept  # type: ignore[arg-type]
    # a record from before the phase measured: a re-run (apps already synced) is no measure
    older = SimpleNamespace(recorded={"gitops": {"applications": []}})
    assert _first_durations(older, 1.0, [{"wave": 0, "duration_s": 0.1}]) == {}  # type: ignore[arg-type]


def test_no_wave_layout_the_needs_allow_deploys_faster() -> None:
    """The waves in components.yaml are the best line the apps' needs allow: among every
    layout that keeps each app after all it requires, none gives a shorter first deploy at
    the upper bounds, and none a shorter one at the lower bounds."""
    import copy
    import itertools

    from zenml_gcp_gitops.outputs import InfraOutputs

    cfg = cfg_of()
    run = run_program(cfg)
    plan = plan_from_run(cfg, run)
    outputs = InfraOutputs.from_mapping({**plan["outputs"], "pipelines_sa_key": None})
    r = render(cfg, outputs)
    keys = {a.name: a.key for a in r.apps}
    db = database_apps(r, outputs)

    def estimate(waves: dict[str, int]) -> tuple[float, float]:
        apps = copy.deepcopy([a.manifest for a in r.apps])
        for app in apps:
            ann = app["metadata"]["annotations"]
            ann["argocd.argoproj.io/sync-wave"] = str(waves[keys[app["metadata"]["name"]]])
        d = G.estimate_duration(plan["resources"], apps, keys, db_apps=db, overlap=True)
        return d["first_deploy"]["max_s"], d["first_deploy"]["min_s"]

    order = [a.key for a in r.apps]
    valid = []
    for combo in itertools.product(range(len(order)), repeat=len(order)):
        w = dict(zip(order, combo, strict=True))
        compact = set(combo) == set(range(max(combo) + 1))
        if compact and all(w[q] < w[a.key] for a in r.apps for q in a.requires):
            valid.append(w)
    assert len(valid) > 3  # the needs leave real choices
    shipped = estimate({a.key: a.wave for a in r.apps})
    results = [estimate(w) for w in valid]
    assert shipped[0] == min(hi for hi, _ in results)
    assert shipped[1] == min(lo for _, lo in results)
    # the layout before (platform, then workloads, then both servers) is slower
    before = {**{a.key: 0 for a in r.apps}, "platform": 1, "workloads": 2}
    before.update(zenml_server=3, mlflow=3)
    assert estimate(before)[0] > shipped[0]
