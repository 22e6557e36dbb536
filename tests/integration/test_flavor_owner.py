"""The build-account flavor's lifecycle on a real ZenML server: one flavor for every
deployment on the server, an owner mark in its config schema, rewritten only by a release at
least as new, and deleted by the last teardown unless a component still uses it.

This module starts its own server: the flavor is global to a server, and the shared one holds
other modules' stacks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.register_fixtures import admin_store, make_cfg, make_outputs
from tests.support.zenml_server import ZenServer, start_zenml_server
from zenml_gcp_gitops import __version__
from zenml_gcp_gitops.flavors import (
    BUILD_ACCOUNT_FLAVOR,
    BUILD_ACCOUNT_FLAVOR_SOURCE,
    LEGACY_FLAVOR_SOURCES,
    OWNER_KEY,
)
from zenml_gcp_gitops.zenml.apply import apply_stack_spec
from zenml_gcp_gitops.zenml.deregister import delete_stack_spec
from zenml_gcp_gitops.zenml.stack_spec import StackSpec, gcp_stack_spec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> Iterator[ZenServer]:
    srv = start_zenml_server()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def store(server: ZenServer) -> Any:
    return admin_store(server)


def _spec(name: str) -> StackSpec:
    cfg = make_cfg(name)
    return gcp_stack_spec(cfg, make_outputs(cfg), mlflow_username="u", mlflow_password="p")


def _flavor(store: Any) -> Any:
    from zenml.models import FlavorFilter

    items = list(
        store.list_flavors(
            FlavorFilter(name=BUILD_ACCOUNT_FLAVOR, type="image_builder"), hydrate=True
        ).items
    )
    assert len(items) <= 1
    return items[0] if items else None


def _mark(store: Any) -> dict[str, Any]:
    flavor = _flavor(store)
    assert flavor is not None
    return dict(flavor.config_schema[OWNER_KEY])


def test_shared_by_two_deployments_and_removed_by_the_last_teardown(store: Any) -> None:
    a, b = _spec("fo-a"), _spec("fo-b")
    apply_stack_spec(store, a)
    apply_stack_spec(store, b)
    assert _mark(store) == {
        "package": "zenml-gcp-gitops",
        "version": __version__,
        "owners": sorted([a.name, b.name]),
    }
    again = apply_stack_spec(store, a)
    assert f"flavor:{BUILD_ACCOUNT_FLAVOR}" in again.unchanged  # no rewrite back and forth

    kept: list[str] = []
    removed = delete_stack_spec(store, a, kept=kept)
    assert f"flavor:{BUILD_ACCOUNT_FLAVOR}" not in removed
    held_by = b.components["image_builder"].name
    assert kept[-1] == f"kept flavor {BUILD_ACCOUNT_FLAVOR}: components still use it ({held_by})"
    assert _mark(store)["owners"] == [b.name]

    kept = []
    removed = delete_stack_spec(store, b, kept=kept)
    assert f"flavor:{BUILD_ACCOUNT_FLAVOR}" in removed
    assert _flavor(store) is None
    assert not kept


def test_an_older_release_leaves_a_newer_schema_and_says_so(store: Any) -> None:
    from zenml.models import FlavorUpdate

    spec = _spec("fo-old")
    apply_stack_spec(store, spec)
    cur = _flavor(store)
    newer = dict(cur.config_schema)
    newer["title"] = "written by a later release"
    newer[OWNER_KEY] = {"package": "zenml-gcp-gitops", "version": "99.0", "owners": ["other"]}
    store.update_flavor(cur.id, FlavorUpdate(config_schema=newer))

    result = apply_stack_spec(store, spec)
    after = _flavor(store).config_schema
    assert after["title"] == "written by a later release"
    assert after[OWNER_KEY]["version"] == "99.0"
    assert after[OWNER_KEY]["owners"] == sorted(["other", spec.name])
    assert any(f"zenml-gcp-gitops 99.0 wrote it (this is {__version__}" in x for x in result.log)
    delete_stack_spec(store, spec)
    assert _flavor(store) is None  # no component uses it any more, whoever else is listed


def test_a_0_1_registration_is_taken_over_and_kept_while_a_hand_made_component_uses_it(
    store: Any, zenml_source_root: Path
) -> None:
    from zenml.enums import StackComponentType
    from zenml.models import ComponentRequest, FlavorRequest
    from zenml.stack.flavor import validate_flavor_source

    (legacy,) = LEGACY_FLAVOR_SOURCES
    _, flavor = validate_flavor_source(legacy, StackComponentType.IMAGE_BUILDER)
    store.create_flavor(
        FlavorRequest(
            name=BUILD_ACCOUNT_FLAVOR,
            type=StackComponentType.IMAGE_BUILDER,
            source=legacy,
            config_schema=flavor.config_schema,  # 0.1 wrote no owner mark
            integration="custom",
            is_custom=True,
        )
    )
    spec = _spec("fo-legacy")
    apply_stack_spec(store, spec)
    cur = _flavor(store)
    assert cur.source == BUILD_ACCOUNT_FLAVOR_SOURCE
    assert cur.config_schema[OWNER_KEY]["owners"] == [spec.name]

    mine = store.create_stack_component(
        ComponentRequest(
            name="by-hand-builder",
            type=StackComponentType.IMAGE_BUILDER,
            flavor=BUILD_ACCOUNT_FLAVOR,
            configuration={"service_account": "by-hand@zgg-test-proj.iam.gserviceaccount.com"},
        )
    )
    kept: list[str] = []
    delete_stack_spec(store, spec, kept=kept)
    assert kept == [
        f"kept flavor {BUILD_ACCOUNT_FLAVOR}: components still use it (by-hand-builder)"
    ]
    assert _mark(store)["owners"] == []
    store.delete_stack_component(mine.id)
