"""A first deploy played at scale: each step takes its estimated (upper) time, scaled down.

The REAL engine, preflight, infra phase and program run against the fake `pulumi` CLI, which
makes each create of a type take its `CREATE_TIMES` upper bound (with the Cloud SQL instance's
shape) at `--scale` seconds per estimated minute, so resources wait for their dependencies as
the Pulumi engine makes them. The REAL gitops phase runs against kmock, where Argo CD is
simulated with time (`tests/support/argo_sim.py`): nothing syncs until the Argo CD install has
taken its time, an app starts once every listed app of a lower sync wave is Healthy and turns
Healthy after its `APP_TIMES` upper bound. Preflight lasts at least its upper bound; register
and ci are stand-ins that take theirs.

Two runs, each on a fresh kmock cluster: `before` is the sequential engine
(`RunOptions(overlap=False)`: gitops after infra), `after` the default (gitops starts when the
cluster side exists, the server apps once infra has ended). The ratio of their wall times is
set against the ratio of the plan's estimates for the two (`estimate_duration`, overlap
False/True). `--zero` first plays both with no delays: the fixed cost of a run (process starts,
the program, the API calls; a few seconds), which the played times carry and the estimate does
not, so the ratio means something only when the delays dominate it (`--scale` 1 or more).

    python benchmarks/bench_first_deploy.py [--scale 1.0] [--zero] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RUNS = {"before": False, "after": True}  # name -> RunOptions.overlap


class Stamped(io.StringIO):
    """The progress lines, each with the seconds since the run began (`--trace`)."""

    def __init__(self, name: str, trace: bool) -> None:
        super().__init__()
        self.name, self.trace, self.t0 = name, trace, time.perf_counter()

    def write(self, s: str) -> int:
        if self.trace and s.strip():
            print(
                f"{self.name:12s} {time.perf_counter() - self.t0:7.2f}  {s.rstrip()}",
                file=sys.stderr,
            )
        return len(s)


class Timed:
    """A later phase that takes the given seconds."""

    def __init__(self, name: str, seconds: float) -> None:
        self.name, self.seconds = name, seconds

    def run(self, ctx: Any) -> dict[str, Any]:
        time.sleep(self.seconds)
        return {"phase": self.name}

    def status(self, ctx: Any) -> dict[str, Any]:
        return {}

    def destroy(self, ctx: Any) -> None:
        return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0, help="seconds per estimated minute")
    ap.add_argument("--zero", action="store_true", help="also play both runs with no delays")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--trace", action="store_true", help="timed progress lines on stderr")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-first-deploy-"))
    try:
        results = play(tmp, args.scale, args.zero, args.trace)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(results))
        return
    for name in RUNS:
        r = results[name]
        line = (
            f"{name:7s} overlap={r['overlap']!s:5s}  estimate {r['estimate_max_s'] / 60:5.1f} min"
            f" -> {r['estimate_scaled_s']:6.2f} s  played {r['played_s']:6.2f} s"
        )
        if "zero_s" in r:
            line += f"  (no delays: {r['zero_s']:.2f} s)"
        print(line)
    print(
        f"after/before: estimate {results['estimate_ratio']:.3f}"
        f"  played {results['played_ratio']:.3f}  (gap {results['ratio_gap']:.1%})"
    )
    if "net_ratio" in results:
        print(
            f"  less the no-delay runs: played {results['net_ratio']:.3f}"
            f"  (gap {results['net_gap']:.1%})"
        )


def play(tmp: Path, scale: float, zero: bool, trace: bool) -> dict[str, Any]:
    per_s = scale / 60
    tempfile.tempdir = str(tmp)  # what the runs' temporary files and their children's go under
    os.environ.update(
        TMPDIR=str(tmp),
        ZENML_GCP_GITOPS_HOME=str(tmp / "home"),
        PULUMI_CONFIG_PASSPHRASE="bench",
        PULUMI_HOME=str(tmp / "pulumi-home"),
    )
    for var in [v for v in os.environ if v.startswith("FAKE_PULUMI_")]:
        del os.environ[var]  # no fault or gate of a caller's environment
    from tests.fakes.google_clients import FakeGcp
    from tests.fakes.kube_kmock import FakeCluster
    from tests.fakes.pulumi import make_fake_pulumi
    from tests.integration.test_gitops_kmock import FAKE_INSTALL
    from tests.support.argo_sim import ArgoSim
    from zenml_gcp_gitops.config import build_config
    from zenml_gcp_gitops.engine import Engine
    from zenml_gcp_gitops.estimate.durations import APP_TIMES, DEFAULT_TIME, PHASE_TIMES, typical_of
    from zenml_gcp_gitops.estimate.graph import estimate_duration
    from zenml_gcp_gitops.gitops.render import render
    from zenml_gcp_gitops.outputs import InfraOutputs
    from zenml_gcp_gitops.phases.gitops import GitopsPhase
    from zenml_gcp_gitops.phases.infra import InfraPhase
    from zenml_gcp_gitops.phases.preflight import PreflightPhase
    from zenml_gcp_gitops.plan import database_apps, plan_from_run, run_program
    from zenml_gcp_gitops.progress import PlainReporter
    from zenml_gcp_gitops.run_options import RunOptions, Services

    class Preflight(PreflightPhase):
        """The real preflight, lasting at least its estimated upper bound."""

        def __init__(self, seconds: float) -> None:
            super().__init__()
            self.seconds = seconds

        def run(self, ctx: Any) -> dict[str, Any]:
            t0 = time.monotonic()
            out: dict[str, Any] = super().run(ctx)
            time.sleep(max(0.0, self.seconds - (time.monotonic() - t0)))
            return out

    root = make_fake_pulumi(tmp / "pulumi")
    settings = {
        "project": "acme-ml-prod",
        "region": "europe-west4",
        "secrets_provider": "passphrase",
    }
    cfg = build_config(None, {**settings, "state": f"file://{tmp / 'state-plan'}"})
    plan = plan_from_run(cfg, run_program(cfg))
    resources = plan["resources"]
    outputs = InfraOutputs.from_mapping({**plan["outputs"], "pipelines_sa_key": None})
    rendered = render(cfg, outputs)
    manifests = [a.manifest for a in rendered.apps]
    keys = {a.name: a.key for a in rendered.apps}
    db = database_apps(rendered, outputs)
    install = tmp / "argocd-install.yaml"
    install.write_text(FAKE_INSTALL)
    source = (install.as_uri(), hashlib.sha256(FAKE_INSTALL.encode()).hexdigest())

    def deploy(name: str, overlap: bool, k: float) -> tuple[float, dict[str, Any]]:
        """One first deploy, every estimated second scaled by `k`: wall time, phase times."""
        create = {r["type"]: typical_of(r).max_s * k for r in resources}
        (tmp / "create.json").write_text(json.dumps(create))
        os.environ["FAKE_PULUMI_CREATE_SECONDS"] = str(tmp / "create.json")
        os.environ["ZENML_GCP_GITOPS_HOME"] = str(tmp / name / "home")
        c = build_config(None, {**settings, "state": f"file://{tmp / name / 'state'}"})
        apps = {n: APP_TIMES.get(key, DEFAULT_TIME).max_s * k for n, key in keys.items()}
        stream = Stamped(name, trace)
        cluster = FakeCluster().start()
        try:
            engine = Engine(
                c,
                phases=[
                    Preflight(PHASE_TIMES["preflight"].max_s * k),
                    InfraPhase(),
                    GitopsPhase(),
                    Timed("register", PHASE_TIMES["register"].max_s * k),  # type: ignore[list-item]
                    Timed("ci", PHASE_TIMES["ci"].max_s * k),  # type: ignore[list-item]
                ],
                options=RunOptions(
                    pulumi_root=str(root),
                    yes=True,
                    overlap=overlap,
                    argocd_cache_dir=str(tmp / name / "argocd-cache"),
                    poll=0.05,
                    wave_timeout=60 + 600 * k,
                ),
                services=Services(
                    gcp_api=FakeGcp(project=c.project).api(c),
                    kube_api_client=cluster.api_client(),
                    argocd_install_source=source,
                ),
                reporter=PlainReporter(stream=stream, verbose=True),
            )
            install_s = PHASE_TIMES["argocd_install"].max_s * k
            with ArgoSim(cluster, c, app_seconds=apps, install_seconds=install_s):
                t0 = stream.t0 = time.perf_counter()
                summary = engine.deploy()
                wall = time.perf_counter() - t0
        finally:
            cluster.stop()
        record = engine.load_record()
        assert record is not None
        ran = record.phases["gitops"].outputs["head_start"]["ran"]
        if ran != overlap:  # the run must be the one it claims to be
            raise SystemExit(f"{name}: gitops head start ran={ran}, expected {overlap}")
        phases = {n: p.get("duration_s") for n, p in summary["phases"].items()}
        return wall, phases

    # first-use costs (imports, the program's first load) out of the measured runs
    warm = Engine(
        cfg,
        phases=[PreflightPhase(), InfraPhase()],
        options=RunOptions(pulumi_root=str(root), yes=True),
        services=Services(gcp_api=FakeGcp(project=cfg.project).api(cfg)),
        reporter=PlainReporter(stream=io.StringIO()),
    )
    warm.deploy(dry_run=True)

    results: dict[str, Any] = {"scale_s_per_min": scale}
    if zero:
        for name, overlap in RUNS.items():
            results.setdefault(name, {})["zero_s"] = round(deploy(f"zero-{name}", overlap, 0)[0], 2)
    for name, overlap in RUNS.items():
        est = estimate_duration(resources, manifests, keys, db_apps=db, overlap=overlap)
        if overlap and est["first_deploy"] != plan["duration"]["first_deploy"]:
            raise SystemExit(f"not the plan's estimate: {est['first_deploy']} {plan['duration']}")
        wall, phases = deploy(name, overlap, per_s)
        results.setdefault(name, {}).update(
            overlap=overlap,
            estimate_max_s=est["first_deploy"]["max_s"],
            estimate_scaled_s=round(est["first_deploy"]["max_s"] * per_s, 2),
            played_s=round(wall, 2),
            phases_s=phases,
        )
    before, after = results["before"], results["after"]
    est_ratio = after["estimate_max_s"] / before["estimate_max_s"]
    played_ratio = after["played_s"] / before["played_s"]
    results["estimate_ratio"] = round(est_ratio, 3)
    results["played_ratio"] = round(played_ratio, 3)
    results["ratio_gap"] = round(abs(played_ratio - est_ratio) / est_ratio, 3)
    if zero:
        net = (after["played_s"] - after["zero_s"]) / (before["played_s"] - before["zero_s"])
        results["net_ratio"] = round(net, 3)
        results["net_gap"] = round(abs(net - est_ratio) / est_ratio, 3)
    return results


if __name__ == "__main__":
    main()
