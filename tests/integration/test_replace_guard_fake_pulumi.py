"""Stateful resources are never replaced by surprise, through the real program and the fake
Pulumi engine: an in-place update proceeds, a change that forces a new SQL instance (and new
buckets, repository, secrets and key) is refused by name before `up`, in `--dry-run` too, and
proceeds with --allow-replace."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.fakes.google_clients import FakeGcp
from tests.fakes.pulumi import read_calls, read_state
from tests.support.fake_engine import fake_cfg, fake_engine
from zenml_gcp_gitops.config import DeploymentConfig
from zenml_gcp_gitops.engine import Engine
from zenml_gcp_gitops.errors import UserError
from zenml_gcp_gitops.run_options import RunOptions
from zenml_gcp_gitops.state.replace_guard import parse_allow

SQL = "gcp:sql/databaseInstance:DatabaseInstance"
BUCKET = "gcp:storage/bucket:Bucket"


@pytest.fixture
def env(fake_pulumi_env: Path) -> Path:
    return fake_pulumi_env


_cfg = fake_cfg


def _engine(cfg: DeploymentConfig, root: Path, **opts: Any) -> Engine:
    return fake_engine(cfg, root, FakeGcp(cfg.project).api(cfg), **opts)


def _by_name(tmp: Path, cfg: DeploymentConfig) -> dict[tuple[str, str], dict[str, Any]]:
    state = read_state(tmp / "state", "zenml-gcp-gitops", cfg.names.pulumi_stack)
    return {(r["type"], r["urn"].rsplit("::", 1)[-1]): r for r in state["resources"]}


def _ups(tmp: Path) -> int:
    return sum(1 for c in read_calls(tmp / "calls.jsonl") if c[:1] == ["up"])


def test_in_place_update_proceeds_a_forced_replacement_is_refused_until_allowed(
    env: Path, fake_pulumi_root: Path
) -> None:
    cfg = _cfg(env)
    _engine(cfg, fake_pulumi_root).deploy(stop_after="infra")
    first = _by_name(env, cfg)
    sql = first[(SQL, "instance")]
    assert sql["protect"] is True and first[(BUCKET, "artifacts")]["protect"] is True

    # a new tier is an in-place update of the same instance
    tier = cfg.model_copy(update={"sql_tier": "db-custom-2-7680"})
    _engine(tier, fake_pulumi_root).deploy(from_phase="infra", stop_after="infra")
    after = _by_name(env, cfg)[(SQL, "instance")]
    assert after["id"] == sql["id"]
    assert after["inputs"]["settings"]["tier"] == "db-custom-2-7680"

    # another region forces a new instance, new buckets, repository, secrets and key
    moved = tier.model_copy(update={"region": "europe-west1"})
    ups = _ups(env)
    with pytest.raises(UserError) as refused:
        _engine(moved, fake_pulumi_root).deploy(from_phase="infra", stop_after="infra")
    msg = refused.value.message
    for key in (
        "replace DatabaseInstance:instance (zenml-mysql)",
        "Bucket:artifacts",
        "Bucket:mlflow",
        "Repository:images",
        "KeyRing:keyring",
        "CryptoKey:key",
        "Secret:zenml-db-password",
    ):
        assert key in msg
    assert "--allow-replace DatabaseInstance:instance" in str(refused.value.hint)
    assert _ups(env) == ups  # stopped before `up`
    kept = _by_name(env, cfg)[(SQL, "instance")]
    assert kept["id"] == sql["id"] and kept["inputs"]["region"] == "europe-west4"

    # --dry-run shows the same list first
    summary = _engine(moved, fake_pulumi_root).deploy(dry_run=True)
    stateful = {c["resource"]: c for c in summary["preview"]["stateful"]}
    assert stateful["DatabaseInstance:instance"] == {
        "resource": "DatabaseInstance:instance",
        "action": "replace",
        "blocked": True,
        "cloud_name": "zenml-mysql",
    }
    assert summary["preview"]["replace"] >= len(stateful)

    # allowing only the instance still refuses, naming only the others
    with pytest.raises(UserError) as partly:
        _engine(
            moved, fake_pulumi_root, allow_replace=parse_allow(["DatabaseInstance:instance"])
        ).deploy(from_phase="infra", stop_after="infra")
    assert "DatabaseInstance:instance" not in partly.value.message
    assert "Bucket:artifacts" in partly.value.message

    _engine(moved, fake_pulumi_root, allow_replace=parse_allow(["all"])).deploy(
        from_phase="infra", stop_after="infra"
    )
    new = _by_name(env, cfg)[(SQL, "instance")]
    assert new["id"] != sql["id"] and new["inputs"]["region"] == "europe-west1"
    # the new resources are protected again for the next run
    again = _engine(moved, fake_pulumi_root).deploy(from_phase="infra", stop_after="infra")
    assert again is not None
    assert _by_name(env, cfg)[(SQL, "instance")]["protect"] is True


def test_cli_names_the_flag_and_rejects_a_bad_value(
    env: Path, fake_pulumi_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zenml_gcp_gitops.cli import cli
    from zenml_gcp_gitops.cli import deploy as deploy_cli

    def make(cfg: DeploymentConfig, options: RunOptions | None = None) -> Engine:
        flags = dataclasses.asdict(options or RunOptions())
        return _engine(cfg, fake_pulumi_root, **{k: v for k, v in flags.items() if v})

    monkeypatch.setattr(deploy_cli, "_make_engine", make)
    base = [
        "deploy",
        "--project",
        "my-project-1",
        "--state",
        f"file://{env / 'state'}",
        "--secrets-provider",
        "passphrase",
        "--stop-after",
        "infra",
        "-y",
    ]
    runner = CliRunner()
    r = runner.invoke(cli, [*base, "--region", "europe-west4"])
    assert r.exit_code == 0, r.output

    r = runner.invoke(cli, [*base, "--region", "europe-west1", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "Would replace DatabaseInstance:instance (zenml-mysql)" in r.output
    assert "--allow-replace DatabaseInstance:instance" in r.output

    r = runner.invoke(cli, [*base, "--region", "europe-west1"])
    assert r.exit_code != 0
    assert "DatabaseInstance:instance" in r.output and "Traceback" not in r.output

    r = runner.invoke(cli, [*base, "--region", "europe-west1", "--allow-replace", "instance"])
    assert r.exit_code == 2 and "is not TYPE:NAME or 'all'" in r.output

    r = runner.invoke(cli, [*base, "--region", "europe-west1", "--allow-replace", "all"])
    assert r.exit_code == 0, r.output
