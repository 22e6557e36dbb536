"""Cloud DNS through the real program and the fake Pulumi engine: the stack owns the
records (and a zone only when it made it), destroy removes exactly those, and deploy records
real creation times per resource type that `status` compares with the estimate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fakes.cloud_dns import FakeCloudDns, FakeZone
from tests.fakes.google_clients import FakeGcp
from tests.fakes.pulumi import read_state
from tests.support.fake_engine import fake_cfg, fake_engine
from zenml_gcp_gitops.config import DeploymentConfig
from zenml_gcp_gitops.engine import Engine
from zenml_gcp_gitops.errors import UserError

RECORD = "gcp:dns/recordSet:RecordSet"
ZONE = "gcp:dns/managedZone:ManagedZone"


@pytest.fixture
def env(fake_pulumi_env: Path) -> Path:
    return fake_pulumi_env


def _cfg(tmp: Path, **kw: Any) -> DeploymentConfig:
    return fake_cfg(tmp, domain="ml.example.com", **kw)


def _engine(cfg: DeploymentConfig, root: Path, dns: FakeCloudDns, **opts: Any) -> Engine:
    return fake_engine(cfg, root, dns.api(cfg), yes=True, **opts)


def _types(tmp: Path, cfg: DeploymentConfig) -> list[str]:
    state = read_state(tmp / "state", "zenml-gcp-gitops", cfg.names.pulumi_stack)
    return [r["type"] for r in state["resources"]]


def test_existing_zone_records_are_owned_and_removed_zone_untouched(
    env: Path, fake_pulumi_root: Path
) -> None:
    cfg = _cfg(env, dns_zone="example-com")
    dns = FakeCloudDns(FakeGcp(project=cfg.project))
    dns.zones[(cfg.project, "example-com")] = FakeZone("example.com.")
    _engine(cfg, fake_pulumi_root, dns).deploy(stop_after="infra")
    types = _types(env, cfg)
    assert types.count(RECORD) == 2 and ZONE not in types

    eng = _engine(cfg, fake_pulumi_root, dns)
    rec = eng.load_record()
    assert rec is not None
    durations = {r["type"]: r for r in rec.phases["infra"].outputs["resource_durations"]}
    assert durations[RECORD]["count"] == 2
    assert durations["gcp:container/cluster:Cluster"]["count"] == 1
    # one row per type, counting what the engine created (every generated password)
    passwords = types.count("random:index/randomPassword:RandomPassword")
    assert passwords >= 7
    assert durations["random:index/randomPassword:RandomPassword"]["count"] == passwords
    rows = eng.status(live=False)["durations"]
    assert {r["type"] for r in rows} == set(durations)
    assert {r["verdict"] for r in rows} <= {"within", "faster", "slower"}

    _engine(cfg, fake_pulumi_root, dns, force=True).destroy()
    assert _types(env, cfg) == []  # the records went; the zone was never the stack's


def test_created_zone_goes_with_the_stack(env: Path, fake_pulumi_root: Path) -> None:
    cfg = _cfg(env, create_dns_zone=True)
    dns = FakeCloudDns(FakeGcp(project=cfg.project))
    summary = _engine(cfg, fake_pulumi_root, dns).deploy(stop_after="infra")
    assert _types(env, cfg).count(ZONE) == 1
    assert summary["outputs"]["dns_zone"] == "zenml-ml-example-com"
    _engine(cfg, fake_pulumi_root, dns, force=True).destroy()
    assert _types(env, cfg) == []


def test_preflight_stops_before_infra_when_the_zone_is_wrong(
    env: Path, fake_pulumi_root: Path
) -> None:
    from zenml_gcp_gitops.errors import PhaseError

    cfg = _cfg(env, dns_zone="example-com")
    dns = FakeCloudDns(FakeGcp(project=cfg.project))
    dns.zones[(cfg.project, "example-com")] = FakeZone("example.org.")
    with pytest.raises(PhaseError, match=r"serves example\.org\., which is not a suffix"):
        _engine(cfg, fake_pulumi_root, dns).deploy(stop_after="infra")
    assert not (env / "state").exists() or _types(env, cfg) == []


def test_destroying_a_created_zone_clears_our_records_and_refuses_foreign_ones(
    env: Path, fake_pulumi_root: Path
) -> None:
    """Cloud DNS deletes a zone only once it holds nothing but its apex SOA and NS: destroy
    deletes what the stack left there (a DNS-01 challenge record), names what someone else
    added and stops, and with --force deletes those too."""
    cfg = _cfg(
        env,
        create_dns_zone=True,
        acme_challenge="dns01",
        deletion_protection=False,
        force_destroy_buckets=True,
    )
    dns = FakeCloudDns(FakeGcp(project=cfg.project))
    _engine(cfg, fake_pulumi_root, dns).deploy(stop_after="infra")
    hosts = sorted(cfg.names.dns_records.values())
    zone = FakeZone("ml.example.com.")
    dns.zones[(cfg.project, cfg.names.dns_zone)] = zone
    ours = [{"name": h, "type": "A", "ttl": 300, "rrdatas": ["34.120.0.10"]} for h in hosts]
    challenge = {
        "name": f"_acme-challenge.{hosts[0]}",
        "type": "TXT",
        "ttl": 60,
        "rrdatas": ['"x"'],
    }
    foreign = {"name": "www.ml.example.com.", "type": "CNAME", "ttl": 300, "rrdatas": ["a.b."]}
    zone.records += [*ours, challenge, foreign]

    with pytest.raises(UserError) as exc:
        _engine(cfg, fake_pulumi_root, dns).destroy()
    assert "www.ml.example.com. CNAME" in exc.value.message
    assert "_acme-challenge" not in exc.value.message and "--force" in (exc.value.hint or "")
    assert foreign in zone.records and _types(env, cfg).count(ZONE) == 1  # nothing touched

    _engine(cfg, fake_pulumi_root, dns, force=True).destroy()
    assert challenge not in zone.records and foreign not in zone.records
    assert _types(env, cfg) == []
    # what is left is the apex and the records Pulumi deletes before the zone
    left = {(r["name"], r["type"]) for r in zone.records}
    assert left == {("ml.example.com.", "SOA"), ("ml.example.com.", "NS")} | {
        (h, "A") for h in hosts
    }
