"""The retirement of stored CI key versions, driven by the product's rules over the fake."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.fakes.gcp_secrets import FakeSecretManager
from zenml_gcp_gitops.gcp.key_versions import GRACE, enforce

SID = "acme-ci-zenml-api-key"


def _sm(*ages_min: float) -> tuple[FakeSecretManager, datetime]:
    """Versions created `ages_min` minutes ago, oldest first."""
    sm, now = FakeSecretManager(), datetime.now(UTC)
    for i, age in enumerate(ages_min, start=1):
        sm.add_version(SID, f"key-{i}")
        sm.created[(SID, i)] = now - timedelta(minutes=age)
    return sm, now


def test_the_replaced_version_lives_exactly_as_long_as_the_retain_window() -> None:
    sm, now = _sm(120, 10)
    rotated = now - timedelta(minutes=10)
    kv = enforce(sm, SID, rotated, 60, now=now)
    assert sm.states(SID) == ["ENABLED", "ENABLED"]
    assert "v1 enabled until" in kv.summary() and "v2 enabled (current)" in kv.summary()
    enforce(sm, SID, rotated, 60, now=now + timedelta(minutes=51))
    assert sm.states(SID) == ["DISABLED", "ENABLED"]
    assert sm.read(SID) == "key-2"
    enforce(sm, SID, rotated, 60, now=now + timedelta(minutes=51) + GRACE)
    assert sm.states(SID) == ["DESTROYED", "ENABLED"]


def test_retain_zero_disables_at_once_and_older_versions_are_dead_keys() -> None:
    sm, now = _sm(300, 200, 0)
    kv = enforce(sm, SID, now, 0, now=now)
    assert sm.states(SID) == ["DISABLED", "DISABLED", "ENABLED"]
    assert len([x for x in kv.log if x.startswith("disabled")]) == 2


def test_a_rotation_that_was_not_stored_retires_the_stored_copy_too() -> None:
    # `rotate --show-key` stores nothing: the stored newest version is the previous key
    sm, now = _sm(120)
    enforce(sm, SID, now - timedelta(minutes=5), 0, now=now)
    assert sm.states(SID) == ["DISABLED"]


def test_never_rotated_keeps_the_only_version() -> None:
    sm, now = _sm(60 * 24 * 30)
    enforce(sm, SID, None, None, now=now + GRACE * 3)
    assert sm.states(SID) == ["ENABLED"]
