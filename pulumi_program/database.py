"""Cloud SQL for MySQL 8: private IP only, TLS enforced, backups with point-in-time recovery."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp
import pulumi_random as random

from ._base import Component, create_only

DATABASE_VERSION = "MYSQL_8_0"
BACKUP_START = "03:00"  # UTC
RETAINED_BACKUPS = 14


@dataclass(frozen=True)
class DatabaseArgs:
    project: str
    region: str
    instance: str
    tier: str
    availability: str  # ZONAL | REGIONAL
    deletion_protection: bool
    network_id: pulumi.Input[str]
    databases: dict[str, str]  # app -> database name
    users: dict[str, str]  # app -> user name
    passwords: dict[str, pulumi.Output[str]]  # app -> generated password (a Pulumi secret)
    labels: dict[str, str]
    kms_key: pulumi.Input[str] | None = None  # CMEK; set when the instance is created only
    kms_ready: Sequence[pulumi.Resource] = ()  # the Cloud SQL agent's grant on the key
    retained_backups: int = RETAINED_BACKUPS
    # binary logs for point-in-time recovery; Cloud SQL wants fewer days than retained backups
    log_retention_days: int = 7
    flags: dict[str, str] = field(default_factory=dict)  # config.SQL_DATABASE_FLAGS
    paused: bool = False  # `pause`: the instance stops (storage and backups are kept)


class Database(Component):
    """One instance, one database and one user per application (zenml, mlflow).

    `ipv4_enabled=False` leaves the instance without a public address; clients connect over
    the private-services-access peering and `ssl_mode=ENCRYPTED_ONLY` rejects plain TCP.
    The caller must make this depend on the servicenetworking connection.
    """

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Database", name, opts)
        # Without one, the API creates `root@%` with an empty password. Nobody needs root
        # (each app has its own user), so the generated value lives only in Pulumi state.
        root_password = random.RandomPassword(
            "root-password", length=32, special=False, opts=self.child()
        )
        self.instance = gcp.sql.DatabaseInstance(
            "instance",
            name=args.instance,
            project=args.project,
            region=args.region,
            database_version=DATABASE_VERSION,
            encryption_key_name=args.kms_key,
            root_password=root_password.result,
            deletion_protection=args.deletion_protection,
            settings=gcp.sql.DatabaseInstanceSettingsArgs(
                tier=args.tier,
                activation_policy="NEVER" if args.paused else "ALWAYS",
                edition="ENTERPRISE",  # db-custom-* tiers are Enterprise-edition tiers
                availability_type=args.availability,
                deletion_protection_enabled=args.deletion_protection,
                disk_autoresize=True,
                disk_type="PD_SSD",
                database_flags=[
                    gcp.sql.DatabaseInstanceSettingsDatabaseFlagArgs(name=k, value=v)
                    for k, v in sorted(args.flags.items())
                ],
                ip_configuration=gcp.sql.DatabaseInstanceSettingsIpConfigurationArgs(
                    ipv4_enabled=False,
                    private_network=args.network_id,
                    ssl_mode="ENCRYPTED_ONLY",
                ),
                backup_configuration=gcp.sql.DatabaseInstanceSettingsBackupConfigurationArgs(
                    enabled=True,
                    binary_log_enabled=True,
                    start_time=BACKUP_START,
                    transaction_log_retention_days=args.log_retention_days,
                    backup_retention_settings=gcp.sql.DatabaseInstanceSettingsBackupConfigurationBackupRetentionSettingsArgs(
                        retained_backups=args.retained_backups, retention_unit="COUNT"
                    ),
                ),
                maintenance_window=gcp.sql.DatabaseInstanceSettingsMaintenanceWindowArgs(
                    day=7, hour=3, update_track="stable"
                ),
                user_labels=args.labels,
            ),
            opts=create_only(self.child(args.kms_ready), "encryptionKeyName"),
        )
        self.databases = {
            app: gcp.sql.Database(
                f"db-{app}",
                name=db,
                instance=self.instance.name,
                project=args.project,
                charset="utf8mb4",
                collation="utf8mb4_0900_ai_ci",
                opts=self.child(),
            )
            for app, db in args.databases.items()
        }
        self.users = {
            app: gcp.sql.User(
                f"user-{app}",
                name=user,
                instance=self.instance.name,
                project=args.project,
                host="%",
                password=args.passwords[app],
                opts=self.child(),
            )
            for app, user in args.users.items()
        }
        self.instance_name: pulumi.Output[str] = self.instance.name
        self.connection_name: pulumi.Output[str] = self.instance.connection_name
        self.private_ip: pulumi.Output[str] = self.instance.private_ip_address
        self.service_account: pulumi.Output[str] = self.instance.service_account_email_address
        self.server_ca_cert: pulumi.Output[str] = self.instance.server_ca_certs.apply(
            lambda certs: (certs[0].cert or "") if certs else ""
        )
        self.register_outputs(
            {
                "instance": self.instance_name,
                "connection_name": self.connection_name,
                "private_ip": self.private_ip,
            }
        )
