"""Every derived name fits GCP's rules at the extremes the config accepts."""

from __future__ import annotations

import re
from typing import Any

import pytest

from zenml_gcp_gitops.config import DeploymentConfig, build_config
from zenml_gcp_gitops.errors import ConfigError

SA_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")  # 6-30
BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")  # 3-63
SECRET_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
ROLE_ID = re.compile(r"^[a-zA-Z0-9_.]{3,64}$")
WIF_POOL = re.compile(r"^[a-z0-9-]{4,32}$")
DNS_LABEL = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")

EXTREMES = [
    ("abcdef", "abc"),  # shortest project and shortest name
    ("a" + "b" * 28 + "c", "n" * 20),  # 30-char project, 20-char name
    ("demo-project-123", "zenml"),  # the default name
    ("demo-project-123", "zenml-prod"),
    ("demo-project-123", "team-a-1"),
]


def _cfg(project: str, name: str, **extra: Any) -> DeploymentConfig:
    return build_config(None, {"project": project, "region": "europe-west4", "name": name, **extra})


@pytest.mark.parametrize(("project", "name"), EXTREMES)
@pytest.mark.parametrize("github_repo", [None, "acme/ml-platform"])
@pytest.mark.parametrize("connector_auth", ["implicit", "service-account"])
def test_derived_names_fit_gcp_rules(
    project: str, name: str, github_repo: str | None, connector_auth: str
) -> None:
    if github_repo and len(name) < 3:
        # `<name>-ci` would be shorter than 6 characters: rejected up front, naming `name`.
        with pytest.raises(ConfigError, match=r"^name: "):
            _cfg(project, name, github_repo=github_repo, connector_auth=connector_auth)
        return
    n = _cfg(project, name, github_repo=github_repo, connector_auth=connector_auth).names
    for sa in n.service_accounts.values():
        assert SA_ID.match(sa), sa
    assert ("ci" in n.service_accounts) is bool(github_repo)
    for bucket in (n.artifact_bucket, n.mlflow_bucket, n.state_bucket):
        assert BUCKET.match(bucket) and "google" not in bucket, bucket
    for secret in n.secrets.values():
        assert SECRET_ID.match(secret), secret
        # ZenML's secrets store is granted every `zenml-*` secret: ours must never match.
        assert not secret.startswith("zenml-"), secret
    for role in n.secrets_store_roles.values():
        assert ROLE_ID.match(role), role
    assert WIF_POOL.match(n.wif_pool)
    assert len(n.cluster) <= 40 and DNS_LABEL.match(n.cluster)
    for k8s_name in (n.network, n.subnet, n.router, n.sql_instance, n.registry_repo):
        assert DNS_LABEL.match(k8s_name), k8s_name
    assert n.registry_uri == f"europe-west4-docker.pkg.dev/{project}/{n.registry_repo}"


def test_two_deployments_in_one_project_share_no_name() -> None:
    a, b = _cfg("demo-project-123", "prod").names, _cfg("demo-project-123", "staging").names

    def flat(n: Any) -> set[str]:
        out = {n.artifact_bucket, n.mlflow_bucket, n.state_bucket, n.cluster, n.sql_instance}
        out |= set(n.service_accounts.values()) | set(n.secrets.values())
        return out

    assert flat(a).isdisjoint(flat(b))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "googlers"}, "name"),
        ({"name": "a"}, "name"),
        ({"name": "ab", "github_repo": "acme/ml"}, "name"),
    ],
)
def test_names_that_break_derived_names_are_rejected(overrides: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_config(None, {"project": "demo-project-123", "region": "europe-west4", **overrides})
    assert err.value.message.startswith(f"{field}: ")
    assert err.value.exit_code == 2


def test_hostnames_default_to_nip_io_and_follow_domain() -> None:
    cfg = _cfg("demo-project-123", "zenml")
    assert cfg.hostnames("203.0.113.7") == ("zenml.203.0.113.7.nip.io", "mlflow.203.0.113.7.nip.io")
    cfg = build_config(None, {**cfg.model_dump(), "domain": "ML.Example.com."})
    assert cfg.domain == "ml.example.com"
    assert cfg.hostnames("203.0.113.7") == ("zenml.ml.example.com", "mlflow.ml.example.com")
