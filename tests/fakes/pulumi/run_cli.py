"""Run the real `zenml-gcp-gitops` CLI in a subprocess with the engine wired to fakes:
the fake pulumi (root from FAKE_PULUMI_ROOT), a fake GCP project, the tiny program (the
packaged one with FAKE_PULUMI_REAL_PROGRAM=1), and fake later phases. Used by tests that need a real process (signals).

With FAKE_KUBE_URL (a kmock server) and FAKE_ARGOCD_SOURCE ("url sha256" of the install
manifest) the gitops phase is the real one, against that cluster, polling fast."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tests.fakes.fake_phases import fake_later_phases
from tests.fakes.google_clients import FakeGcp
from tests.fakes.pulumi import tiny_program
from zenml_gcp_gitops.cli import deploy as deploy_cli
from zenml_gcp_gitops.engine import Engine
from zenml_gcp_gitops.phases.infra import InfraPhase
from zenml_gcp_gitops.phases.preflight import PreflightPhase
from zenml_gcp_gitops.progress import make_reporter
from zenml_gcp_gitops.run_options import RunOptions, Services


def _make_engine(cfg, options=None):  # type: ignore[no-untyped-def]
    journal: list[str] = []
    opts = dataclasses.replace(options or RunOptions(), pulumi_root=os.environ["FAKE_PULUMI_ROOT"])
    later: list[Any] = list(fake_later_phases(journal))
    kube: dict[str, Any] = {}
    if os.environ.get("FAKE_KUBE_URL"):
        from kubernetes import client

        from zenml_gcp_gitops.phases.gitops import GitopsPhase

        conf = client.Configuration()
        conf.host = os.environ["FAKE_KUBE_URL"]
        url, sha = os.environ["FAKE_ARGOCD_SOURCE"].split()
        kube = {"kube_api_client": client.ApiClient(conf), "argocd_install_source": (url, sha)}
        opts = dataclasses.replace(
            opts,
            argocd_cache_dir=os.environ.get("FAKE_ARGOCD_CACHE"),
            poll=0.02,
            wave_timeout=60,
        )
        later[0] = GitopsPhase()
    services = Services(
        **kube,
        gcp_api=FakeGcp(project=cfg.project).api(cfg),
        # the packaged program with FAKE_PULUMI_REAL_PROGRAM
        program=None if os.environ.get("FAKE_PULUMI_REAL_PROGRAM") else tiny_program.build,
    )
    phases = [PreflightPhase(), InfraPhase(), *later]
    return Engine(
        cfg,
        phases=phases,
        options=opts,
        services=services,
        reporter=make_reporter(verbose=opts.verbose),
    )


deploy_cli._make_engine = _make_engine  # type: ignore[assignment]

if __name__ == "__main__":
    from zenml_gcp_gitops.cli import main

    sys.argv = ["zenml-gcp-gitops", *sys.argv[1:]]
    main()
