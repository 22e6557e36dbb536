"""The stateful-replacement guard: which preview steps stop a deploy, the --allow-replace
syntax, and `protect` on every stateful resource of the real program (under set_mocks)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from zenml_gcp_gitops.config import build_config
from zenml_gcp_gitops.errors import ConfigError
from zenml_gcp_gitops.plan import run_program
from zenml_gcp_gitops.state.replace_guard import (
    STATEFUL_TYPES,
    StepCollector,
    allowing,
    blocked,
    parse_allow,
    protect_resource,
    refusal,
    set_protection,
)

SQL = "gcp:sql/databaseInstance:DatabaseInstance"
BUCKET = "gcp:storage/bucket:Bucket"
SECRET = "gcp:secretmanager/secret:Secret"
CLUSTER = "gcp:container/cluster:Cluster"
STACK = "urn:pulumi:zenml::zenml-gcp-gitops::"


def _urn(token: str, name: str, parent: str = "zenml-gcp-gitops:infra:Database") -> str:
    return f"{STACK}{parent}${token}::{name}"


def pre(op: str, token: str, name: str, inputs: dict[str, Any] | None = None) -> Any:
    meta = SimpleNamespace(
        op=SimpleNamespace(value=op),
        type=token,
        urn=_urn(token, name),
        old=SimpleNamespace(inputs=inputs or {}),
        new=None,
    )
    return SimpleNamespace(resource_pre_event=SimpleNamespace(metadata=meta), diagnostic_event=None)


def diag(urn: str, message: str) -> Any:
    return SimpleNamespace(
        resource_pre_event=None, diagnostic_event=SimpleNamespace(urn=urn, message=message)
    )


def collect(*events: Any) -> StepCollector:
    seen: list[Any] = []
    c = StepCollector(then=seen.append)
    for e in events:
        c(e)
    assert seen == list(events)  # the progress tracker still sees every event
    return c


def test_replacements_and_deletes_of_stateful_resources_are_blocked() -> None:
    c = collect(
        pre("create-replacement", SQL, "instance", {"name": "zenml-sql"}),
        pre("replace", SQL, "instance", {"name": "zenml-sql"}),
        pre("update", BUCKET, "artifacts"),
        pre("same", BUCKET, "mlflow"),
        pre("replace", CLUSTER, "cluster"),  # not stateful: a new cluster loses no data
        pre("delete", SECRET, "gitops-repo", {"secretId": "zenml-gitops-repo"}),
        pre("delete-replaced", SQL, "instance"),
    )
    bad = blocked(c.changes, frozenset())
    assert [(b.key, b.action, b.cloud_name) for b in bad] == [
        ("DatabaseInstance:instance", "replace", "zenml-sql"),
        ("Secret:gitops-repo", "delete", "zenml-gitops-repo"),
    ]
    err = refusal(bad)
    assert "replace DatabaseInstance:instance (zenml-sql)" in err.message
    assert "delete Secret:gitops-repo (zenml-gitops-repo)" in err.message
    assert "--allow-replace DatabaseInstance:instance --allow-replace Secret:gitops-repo" in str(
        err.hint
    )
    only_sql = parse_allow(["databaseinstance:INSTANCE"])
    assert [b.key for b in blocked(c.changes, only_sql)] == ["Secret:gitops-repo"]
    assert blocked(c.changes, parse_allow(["all"])) == []


def test_a_protected_resource_failing_the_preview_counts_as_a_replacement() -> None:
    urn = _urn(BUCKET, "artifacts", "zenml-gcp-gitops:infra:Storage")
    c = collect(
        diag(urn, f'unable to replace resource "{urn}"\nas it is currently marked for protection'),
        diag(_urn(CLUSTER, "cluster"), "marked for protection"),
        diag(urn, "some other error"),
    )
    assert [(b.key, b.action) for b in blocked(c.changes, frozenset())] == [
        ("Bucket:artifacts", "replace")
    ]


@pytest.mark.parametrize("bad", ["instance", ":instance", "Bucket:", "Bucket: x", ""])
def test_allow_replace_syntax_errors_are_one_clean_line(bad: str) -> None:
    with pytest.raises(ConfigError, match="is not TYPE:NAME or 'all'"):
        parse_allow([bad])


def test_allow_replace_takes_the_full_type_token_too() -> None:
    assert parse_allow([f"{SQL}:instance", "Bucket:mlflow"]) == {
        "databaseinstance:instance",
        "bucket:mlflow",
    }


def test_protect_follows_type_protection_and_allow_list() -> None:
    set_protection(True)
    assert protect_resource(SQL, "instance") is True
    assert protect_resource(CLUSTER, "cluster") is None
    with allowing(parse_allow(["DatabaseInstance:instance"])):
        assert protect_resource(SQL, "instance") is False
        assert protect_resource(BUCKET, "artifacts") is True
    assert protect_resource(SQL, "instance") is True
    set_protection(False)
    try:
        assert protect_resource(SQL, "instance") is False
    finally:
        set_protection(True)


def _cfg(**kw: Any) -> Any:
    return build_config(None, {"project": "acme-ml-prod", "region": "europe-west4", **kw})


def test_the_program_protects_exactly_its_stateful_resources() -> None:
    run = run_program(_cfg(gitops_repo_private=True, gitops_repo="https://github.com/a/b"))
    types = {r.type for r in run.registrations}
    assert types >= STATEFUL_TYPES  # every listed type is a real type the program uses
    protected = {(r.type, r.name) for r in run.registrations if r.protect}
    stateful = {(r.type, r.name) for r in run.registrations if r.type in STATEFUL_TYPES}
    assert protected == stateful
    assert ("gcp:storage/bucket:Bucket", "artifacts") in protected
    assert ("gcp:secretmanager/secret:Secret", "gitops-repo") in protected


def test_destroy_force_program_config_lifts_protect() -> None:
    # `destroy --force` runs the program with deletion_protection off
    run = run_program(_cfg(deletion_protection=False))
    assert not [r for r in run.registrations if r.protect]
