"""A first deploy played at scale: each step takes its estimated (upper) time, scaled down.

The REAL engine, preflight and infra phase and the REAL program run against the fake
`pulumi` CLI, which makes each create of a type take its `CREATE_TIMES` upper bound (with the
Cloud SQL instance's shape) at `--scale` seconds per minute, so resources wait for their
dependencies as the Pulumi engine makes them. The later phases are stand-ins that take the
Argo CD install, each sync wave and register/ci at their upper bounds, scaled the same way.

Two layouts of the sync waves are played: `before` (MLflow in a wave after ZenML, as the
app-of-apps had it) and `after` (the rendered app-of-apps: ZenML and MLflow in one wave). The
ratio of their wall times is set against the ratio of the plan's estimates for the two.

    python benchmarks/bench_first_deploy.py [--scale 1.0] [--json]
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class Timed:
    """A later phase that takes the given seconds (one after another)."""

    def __init__(self, name: str, seconds: list[float]) -> None:
        self.name, self.seconds = name, seconds

    def run(self, ctx: Any) -> dict[str, Any]:
        for s in self.seconds:
            time.sleep(s)
        return {"phase": self.name}

    def status(self, ctx: Any) -> dict[str, Any]:
        return {}

    def destroy(self, ctx: Any) -> None:
        return None


def _layout_before(apps: list[dict[str, Any]], keys: dict[str, str]) -> list[dict[str, Any]]:
    """MLflow one wave after ZenML (the layout before they shared a wave)."""
    out = copy.deepcopy(apps)
    for app in out:
        if keys[app["metadata"]["name"]] == "mlflow":
            ann = app["metadata"]["annotations"]
            ann["argocd.argoproj.io/sync-wave"] = str(int(ann["argocd.argoproj.io/sync-wave"]) + 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0, help="seconds per estimated minute")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    per_s = args.scale / 60
    tmp = Path(tempfile.mkdtemp(prefix="bench-first-deploy-"))
    os.environ.update(
        ZENML_GCP_GITOPS_HOME=str(tmp / "home"),
        PULUMI_CONFIG_PASSPHRASE="bench",
        PULUMI_HOME=str(tmp / "pulumi-home"),
    )
    from tests.fakes.google_clients import FakeGcp
    from tests.fakes.pulumi import make_fake_pulumi
    from zenml_gcp_gitops.config import build_config
    from zenml_gcp_gitops.engine import Engine
    from zenml_gcp_gitops.estimate.durations import PHASE_TIMES, typical_of
    from zenml_gcp_gitops.estimate.graph import estimate_duration
    from zenml_gcp_gitops.gitops.render import render
    from zenml_gcp_gitops.phases.infra import InfraPhase
    from zenml_gcp_gitops.phases.preflight import PreflightPhase
    from zenml_gcp_gitops.plan import database_apps, plan_from_run, run_program
    from zenml_gcp_gitops.progress import PlainReporter
    from zenml_gcp_gitops.run_options import RunOptions, Services

    root = make_fake_pulumi(tmp / "pulumi")
    settings = {"project": "acme-ml-prod", "region": "europe-west4"}
    cfg = build_config(
        None,
        {**settings, "state": f"file://{tmp / 'state'}", "secrets_provider": "passphrase"},
    )
    run = run_program(cfg)
    plan = plan_from_run(cfg, run)
    create = {r["type"]: typical_of(r).max_s * per_s for r in plan["resources"]}
    (tmp / "create.json").write_text(json.dumps(create))
    os.environ["FAKE_PULUMI_CREATE_SECONDS"] = str(tmp / "create.json")

    from zenml_gcp_gitops.outputs import InfraOutputs

    outputs = InfraOutputs.from_mapping({**plan["outputs"], "pipelines_sa_key": None})
    rendered = render(cfg, outputs)
    keys = {a.name: a.key for a in rendered.apps}
    db = database_apps(rendered, outputs)
    layouts = {
        "before": _layout_before([a.manifest for a in rendered.apps], keys),
        "after": [a.manifest for a in rendered.apps],
    }
    results: dict[str, Any] = {"scale_s_per_min": args.scale}

    def engine_for(name: str, later: list[Timed]) -> Engine:
        state = tmp / f"state-{name}"
        c = build_config(
            None, {**settings, "state": f"file://{state}", "secrets_provider": "passphrase"}
        )
        return Engine(
            c,
            phases=[PreflightPhase(), InfraPhase(), *later],  # type: ignore[list-item]
            options=RunOptions(pulumi_root=str(root), yes=True),
            services=Services(gcp_api=FakeGcp(project=c.project).api(c)),
            reporter=PlainReporter(stream=io.StringIO()),
        )

    engine_for("warm-up", []).deploy(dry_run=True)  # first-use costs out of the measured runs
    for name, apps in layouts.items():
        est = estimate_duration(plan["resources"], apps, keys, db_apps=db)
        waves = [w["max_s"] * per_s for w in est["sync_waves"]]
        gitops = Timed("gitops", [PHASE_TIMES["argocd_install"].max_s * per_s, *waves])
        later = [
            gitops,
            Timed("register", [PHASE_TIMES["register"].max_s * per_s]),
            Timed("ci", [PHASE_TIMES["ci"].max_s * per_s]),
        ]
        engine = engine_for(name, later)
        t0 = time.perf_counter()
        engine.deploy()
        wall = time.perf_counter() - t0
        results[name] = {
            "estimate_max_s": est["first_deploy"]["max_s"],
            "played_s": round(wall, 2),
            "waves": len(est["sync_waves"]),
        }
    est_ratio = results["after"]["estimate_max_s"] / results["before"]["estimate_max_s"]
    played_ratio = results["after"]["played_s"] / results["before"]["played_s"]
    results["estimate_ratio"] = round(est_ratio, 3)
    results["played_ratio"] = round(played_ratio, 3)
    results["ratio_gap"] = round(abs(played_ratio - est_ratio) / est_ratio, 3)
    if args.json:
        print(json.dumps(results))
    else:
        for name in layouts:
            r = results[name]
            print(
                f"{name:7s} {r['waves']} waves  estimate {r['estimate_max_s'] / 60:5.1f} min"
                f"  played {r['played_s']:6.2f} s"
            )
        print(
            f"after/before: estimate {est_ratio:.3f}  played {played_ratio:.3f}"
            f"  (gap {results['ratio_gap']:.1%})"
        )


if __name__ == "__main__":
    main()
