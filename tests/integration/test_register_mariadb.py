"""The register and CI tests again, on a ZenML server backed by MariaDB set up like the Cloud
SQL instance (tests/support/zenml_server.py: binary logging, the instance's flags, TLS only, a
user with rights on its own database only). Needs `mariadbd` (skipped without it, failing
under CI=true)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import require
from tests.integration.test_ci import (  # noqa: F401  (fixtures and tests re-collected here)
    cli_env,
    fake_sm,
    test_cli_rotate_show_key_and_delete,
    test_create_is_idempotent_and_stores_the_key,
    test_rotation_with_retain_window,
)
from tests.integration.test_register import (  # noqa: F401
    test_failure_midway_leaves_nothing_half_registered,
    test_foreign_component_is_refused_unless_adopted,
    test_register_values_labels_and_secret_refs,
    test_second_run_is_a_noop_and_change_updates_in_place,
    test_service_account_connector_keeps_the_key_in_zenml_secrets,
)
from tests.support.register_fixtures import admin_store
from tests.support.zenml_server import (
    ZenServer,
    mariadb_available,
    start_mariadb,
    start_zenml_server,
)

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def server() -> Iterator[ZenServer]:
    require(None if mariadb_available() else "mariadbd (apt-get install mariadb-server)")
    db = start_mariadb()
    try:
        # ZenML's migrations from empty, through TLS, as the zenml user (no SUPER), under
        # binary logging: what the server does on its first start in the cluster
        zs = start_zenml_server(store_url=db.store_url(), extra_env=db.zenml_env())
        try:
            with urllib.request.urlopen(zs.url + "/api/v1/info") as r:
                info = json.loads(r.read())
            assert info["database_type"] == "mysql"
            yield zs
        finally:
            zs.stop()
    finally:
        db.stop()


@pytest.fixture(scope="module")
def store(server: ZenServer) -> Any:
    return admin_store(server)
