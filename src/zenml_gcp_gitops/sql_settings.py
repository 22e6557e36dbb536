"""Cloud SQL settings that the program, the operations and the test database share.

`config.py` re-exports them: one source for the flags the instance runs with and for the
backup retention rules, so a flag added here is applied to the instance and to the MariaDB
that the tests run the migrations on.
"""

from __future__ import annotations

# Database flags of the Cloud SQL for MySQL instance (name -> value, as the API takes them).
#
# log_bin_trust_function_creators: the instance keeps binary logs (point-in-time recovery
# needs them) and Cloud SQL users have no SUPER privilege, so without this flag MySQL refuses
# CREATE TRIGGER / CREATE FUNCTION from the application users (error 1419). MLflow's tracking
# migrations create triggers (the secrets tables). The flag only lifts the SUPER check for
# routine and trigger creators; the users still have rights on their own database only.
# The alternative, rewriting MLflow's migrations to avoid triggers, would fork upstream.
SQL_DATABASE_FLAGS: dict[str, str] = {
    "log_bin_trust_function_creators": "on",
}

# Cloud SQL Enterprise edition keeps 1 to 7 days of transaction (binary) logs, and requires
# the number of retained automated backups to be greater than the days of logs kept.
MAX_LOG_RETENTION_DAYS = 7
MIN_BACKUP_RETENTION_DAYS = 2


def log_retention_days(backup_retention_days: int) -> int:
    """Days of binary logs for point-in-time recovery: as many as allowed, fewer than the
    retained daily backups (Cloud SQL refuses otherwise)."""
    if backup_retention_days < MIN_BACKUP_RETENTION_DAYS:
        raise ValueError(
            f"backup_retention_days must be at least {MIN_BACKUP_RETENTION_DAYS}: Cloud SQL "
            "keeps more daily backups than days of point-in-time logs, and at least one day "
            "of logs"
        )
    return min(MAX_LOG_RETENTION_DAYS, backup_retention_days - 1)
