"""Run the real `zenml-gcp-gitops` CLI in a subprocess with the engine wired to fakes:
the fake pulumi (root from FAKE_PULUMI_ROOT), a fake GCP project, the tiny program (the
packaged one with FAKE_PULUMI_REAL_PROGRAM=1), and fake later phases. Used by tests that need a real process (signals)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tests.fakes.fake_phases import fake_later_phases
from tests.fakes.google_clients import FakeGcp
from tests.fakes.pulumi import tiny_program
from zenml_gcp_gitops.cli import deploy as deploy_cli
from zenml_gcp_gitops.engine import Engine
from zenml_gcp_gitops.phases.infra import InfraPhase
from zenml_gcp_gitops.phases.preflight import PreflightPhase
from zenml_gcp_gitops.progress import make_reporter


def _make_engine(cfg, *, options, verbose):  # type: ignore[no-untyped-def]
    journal: list[str] = []
    opts = {
        **options,
        "pulumi_root": os.environ["FAKE_PULUMI_ROOT"],
        "gcp_api": FakeGcp(project=cfg.project).api(cfg),
        "program": tiny_program.build,
    }
    if os.environ.get("FAKE_PULUMI_REAL_PROGRAM"):
        del opts["program"]  # the packaged program
    phases = [PreflightPhase(), InfraPhase(), *fake_later_phases(journal)]
    return Engine(cfg, phases=phases, options=opts, reporter=make_reporter(verbose=verbose))


deploy_cli._make_engine = _make_engine  # type: ignore[assignment]

if __name__ == "__main__":
    from zenml_gcp_gitops.cli import main

    sys.argv = ["zenml-gcp-gitops", *sys.argv[1:]]
    main()
