"""The backup bucket: SQL exports and manifests of `zenml-gcp-gitops backup`.

Private, versioned and CMEK-encrypted like the artifact buckets. Exports older than
`backup_retention_days` are deleted (they become noncurrent versions, which go a day later).
Only the Cloud SQL instance's service agent may write here (the export and import APIs act
as that agent); nothing else in the deployment is granted on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from ._base import Component
from .storage import private_bucket

SQL_AGENT_ROLE = "roles/storage.objectAdmin"  # export writes, import reads, re-runs overwrite


@dataclass(frozen=True)
class BackupArgs:
    project: str
    region: str
    bucket: str
    kms_key_id: pulumi.Input[str]
    retention_days: int
    sql_service_account: pulumi.Input[str]  # the instance's serviceAccountEmailAddress
    force_destroy: bool
    labels: dict[str, str]
    log_bucket: pulumi.Input[str] | None = None  # usage logs go there (bucket_access_logs)


class Backup(Component):
    def __init__(self, name: str, args: BackupArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Backup", name, opts)
        self.bucket = private_bucket(
            "bucket",
            name=args.bucket,
            project=args.project,
            region=args.region,
            kms_key_id=args.kms_key_id,
            lifecycle_rules=[
                gcp.storage.BucketLifecycleRuleArgs(
                    action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
                    condition=gcp.storage.BucketLifecycleRuleConditionArgs(
                        age=args.retention_days, with_state="LIVE"
                    ),
                ),
                gcp.storage.BucketLifecycleRuleArgs(
                    action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
                    condition=gcp.storage.BucketLifecycleRuleConditionArgs(
                        with_state="ARCHIVED", days_since_noncurrent_time=1
                    ),
                ),
            ],
            logging=(
                gcp.storage.BucketLoggingArgs(log_bucket=args.log_bucket)
                if args.log_bucket is not None
                else None
            ),
            force_destroy=args.force_destroy,
            labels=args.labels,
            opts=self.child(),
        )
        self.sql_agent_grant = gcp.storage.BucketIAMMember(
            "sql-agent-writer",
            bucket=self.bucket.name,
            role=SQL_AGENT_ROLE,
            member=pulumi.Output.from_input(args.sql_service_account).apply(
                lambda email: f"serviceAccount:{email}"
            ),
            opts=self.child(),
        )
        self.name: pulumi.Output[str] = self.bucket.name
        self.register_outputs({"bucket": self.name})
