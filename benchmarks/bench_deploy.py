"""Wall time of the deploy engine's Pulumi path, through the fake `pulumi` CLI.

Runs the REAL Automation API and the REAL program (86 resources with the default config)
against `tests/fakes/pulumi` with a file:// backend, in one process: a dry run on an empty
state, the first deploy, a no-op re-run (refresh + up), a dry run of the deployed stack and
`destroy --force`. The later phases are fakes. What this measures is the engine's own cost
(CLI round trips, event handling, record writes), not GCP: real GCP adds minutes per step.

    python benchmarks/bench_deploy.py [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    os.environ.update(
        ZENML_GCP_GITOPS_HOME=str(tmp / "home"),
        PULUMI_CONFIG_PASSPHRASE="bench",
        PULUMI_HOME=str(tmp / "pulumi-home"),
    )
    from tests.fakes.fake_phases import fake_later_phases
    from tests.fakes.google_clients import FakeGcp
    from tests.fakes.pulumi import make_fake_pulumi
    from zenml_gcp_gitops.config import build_config
    from zenml_gcp_gitops.engine import Engine
    from zenml_gcp_gitops.phases.infra import InfraPhase
    from zenml_gcp_gitops.phases.preflight import PreflightPhase
    from zenml_gcp_gitops.progress import PlainReporter
    from zenml_gcp_gitops.run_options import RunOptions, Services

    root = make_fake_pulumi(tmp / "pulumi")
    cfg = build_config(
        None,
        {
            "project": "acme-ml-prod",
            "region": "europe-west4",
            "state": f"file://{tmp / 'state'}",
            "secrets_provider": "passphrase",
        },
    )

    def engine(force: bool = False) -> Engine:
        return Engine(
            cfg,
            phases=[PreflightPhase(), InfraPhase(), *fake_later_phases([])],
            options=RunOptions(pulumi_root=str(root), yes=True, force=force),
            services=Services(gcp_api=FakeGcp(project=cfg.project).api(cfg)),
            reporter=PlainReporter(stream=io.StringIO()),
        )

    steps = {
        "dry_run_empty_state": lambda: engine().deploy(dry_run=True),
        "first_deploy": lambda: engine().deploy(),
        "noop_rerun": lambda: engine().deploy(),
        "dry_run_deployed": lambda: engine().deploy(dry_run=True),
        "destroy_force": lambda: engine(force=True).destroy(),
    }
    times: dict[str, float] = {}
    for name, fn in steps.items():
        t0 = time.perf_counter()
        fn()
        times[name] = round(time.perf_counter() - t0, 2)
    if args.json:
        print(json.dumps(times))
    else:
        for name, t in times.items():
            print(f"{name:22s} {t:6.2f} s")


if __name__ == "__main__":
    main()
