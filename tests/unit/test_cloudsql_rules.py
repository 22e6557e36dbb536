"""The Cloud SQL instance's settings obey the rules the SQL Admin API enforces.

Cloud SQL (Enterprise edition) keeps 1 to 7 days of transaction logs and refuses a backup
configuration whose retained backups are not more than those days. Every retention the config
accepts must give a configuration the API accepts, and the flags the program sets come from
the one source the test database also uses.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_program import SQL, one, run
from zenml_gcp_gitops import config as config_mod
from zenml_gcp_gitops.config import SQL_DATABASE_FLAGS, build_config
from zenml_gcp_gitops.errors import ConfigError

BASE = {"project": "acme-ml-prod", "region": "europe-west4"}


def cloud_sql_accepts(backup: dict[str, Any]) -> bool:
    """The API's rule for a MySQL Enterprise instance's backupConfiguration."""
    logs = backup["transactionLogRetentionDays"]
    kept = backup["backupRetentionSettings"]["retainedBackups"]
    return 1 <= logs <= 7 and kept > logs and backup["binaryLogEnabled"] is True


@pytest.mark.parametrize("days", [2, 3, 7, 8, 30, 365])
def test_the_program_sends_a_backup_configuration_cloud_sql_accepts(days: int) -> None:
    backup = one(run(backup_retention_days=days), SQL).inputs["settings"]["backupConfiguration"]
    assert cloud_sql_accepts(backup), backup
    assert backup["backupRetentionSettings"]["retainedBackups"] == days
    assert backup["transactionLogRetentionDays"] == min(7, days - 1)  # as many days as allowed


def test_every_accepted_retention_is_valid_and_1_is_refused_with_the_rule() -> None:
    accepted = []
    for days in range(0, 400):
        try:
            cfg = build_config(None, {**BASE, "backup_retention_days": days})
        except ConfigError as e:
            assert "\n" not in e.message.strip()
            if days == 1:
                assert "at least 2" in e.message and "point-in-time" in e.message
            continue
        accepted.append(days)
        logs = cfg.sql_log_retention_days
        assert 1 <= logs <= 7 and days > logs
    assert accepted == list(range(2, 366))


def test_the_instance_runs_with_the_shared_flags_including_trigger_creation() -> None:
    flags = one(run(), SQL).inputs["settings"]["databaseFlags"]
    assert {f["name"]: f["value"] for f in flags} == SQL_DATABASE_FLAGS
    # MLflow's migrations create triggers; under binary logging, without SUPER, only this
    # flag lets them (MySQL error 1419)
    assert SQL_DATABASE_FLAGS["log_bin_trust_function_creators"] == "on"
    assert config_mod.SQL_DATABASE_FLAGS is SQL_DATABASE_FLAGS
