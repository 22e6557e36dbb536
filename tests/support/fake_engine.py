"""The engine the fake-Pulumi tests drive: the real preflight and infra phases over the fake
Pulumi CLI, and fakes for every later phase."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.fakes.fake_phases import fake_later_phases
from tests.support.typed_options import typed
from zenml_gcp_gitops.config import DeploymentConfig, build_config
from zenml_gcp_gitops.engine import Engine
from zenml_gcp_gitops.phases.infra import InfraPhase
from zenml_gcp_gitops.phases.preflight import PreflightPhase
from zenml_gcp_gitops.progress import PlainReporter


def fake_cfg(tmp: Path, **kw: Any) -> DeploymentConfig:
    """A config whose Pulumi state lives under `tmp` (a test's own folder)."""
    return build_config(
        None,
        {
            "project": "my-project-1",
            "region": "europe-west4",
            "state": f"file://{tmp / 'state'}",
            "secrets_provider": "passphrase",
            **kw,
        },
    )


def fake_engine(cfg: DeploymentConfig, root: Path, gcp_api: Any, **opts: Any) -> Engine:
    """Preflight and infra for real on the fake Pulumi under `root`, later phases faked."""
    return Engine(
        cfg,
        phases=[PreflightPhase(), InfraPhase(), *fake_later_phases([])],
        **typed({"pulumi_root": str(root), "gcp_api": gcp_api, **opts}, context=False),
        reporter=PlainReporter(verbose=False),
    )
