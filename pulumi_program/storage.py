"""Artifact buckets for ZenML and MLflow: private, versioned, CMEK-encrypted."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from ._base import Component

ENCRYPTER = "roles/cloudkms.cryptoKeyEncrypterDecrypter"


@dataclass(frozen=True)
class StorageArgs:
    project: str
    region: str
    buckets: dict[str, str]  # logical key (artifacts, mlflow) -> globally unique name
    kms_key_id: pulumi.Input[str]
    noncurrent_version_days: int
    force_destroy: bool
    labels: dict[str, str]
    access_log_bucket: str | None = None  # usage and storage logs of the buckets go here


class Storage(Component):
    """Buckets with uniform access, public access prevention and customer-managed keys.

    No lifecycle rule ever deletes a live object: ZenML's lineage points at artifacts for
    as long as their runs exist. Only *noncurrent* versions (overwritten or deleted objects)
    expire after `noncurrent_version_days`.
    """

    def __init__(self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Storage", name, opts)
        # The GCS service agent encrypts objects with the key, so it needs the key first.
        agent = gcp.storage.get_project_service_account_output(project=args.project)
        self.kms_grant = gcp.kms.CryptoKeyIAMMember(
            "gcs-agent-kms",
            crypto_key_id=args.kms_key_id,
            role=ENCRYPTER,
            member=agent.email_address.apply(lambda email: f"serviceAccount:{email}"),
            opts=self.child(),
        )
        self.log_bucket: gcp.storage.Bucket | None = None
        logging: gcp.storage.BucketLoggingArgs | None = None
        if args.access_log_bucket:
            self.log_bucket = self._bucket("access-logs", args.access_log_bucket, args, None)
            # GCS writes usage logs as this Google group (documented, fixed).
            log_writer = gcp.storage.BucketIAMMember(
                "access-logs-writer",
                bucket=self.log_bucket.name,
                role="roles/storage.objectCreator",
                member="group:cloud-storage-analytics@google.com",
                opts=self.child(),
            )
            logging = gcp.storage.BucketLoggingArgs(log_bucket=self.log_bucket.name)
            self.log_deps: list[pulumi.Resource] = [log_writer]
        else:
            self.log_deps = []
        self.buckets: dict[str, gcp.storage.Bucket] = {
            key: self._bucket(key, bucket, args, logging) for key, bucket in args.buckets.items()
        }
        self.names: dict[str, pulumi.Output[str]] = {k: b.name for k, b in self.buckets.items()}
        self.register_outputs({"buckets": self.names})

    def _bucket(
        self,
        key: str,
        bucket: str,
        args: StorageArgs,
        logging: gcp.storage.BucketLoggingArgs | None,
    ) -> gcp.storage.Bucket:
        return private_bucket(
            key,
            name=bucket,
            project=args.project,
            region=args.region,
            kms_key_id=args.kms_key_id,
            lifecycle_rules=[
                gcp.storage.BucketLifecycleRuleArgs(
                    action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
                    condition=gcp.storage.BucketLifecycleRuleConditionArgs(
                        with_state="ARCHIVED",
                        days_since_noncurrent_time=args.noncurrent_version_days,
                    ),
                )
            ],
            logging=logging,
            force_destroy=args.force_destroy,
            labels=args.labels,
            opts=self.child([self.kms_grant, *(self.log_deps if logging else [])]),
        )


def private_bucket(
    resource_name: str,
    *,
    name: str,
    project: str,
    region: str,
    kms_key_id: pulumi.Input[str],
    lifecycle_rules: list[gcp.storage.BucketLifecycleRuleArgs],
    logging: gcp.storage.BucketLoggingArgs | None,
    force_destroy: bool,
    labels: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> gcp.storage.Bucket:
    """Every bucket of the stack: regional, uniform access, never public, versioned, CMEK."""
    return gcp.storage.Bucket(
        resource_name,
        name=name,
        project=project,
        location=region.upper(),
        storage_class="STANDARD",
        uniform_bucket_level_access=True,
        public_access_prevention="enforced",
        versioning=gcp.storage.BucketVersioningArgs(enabled=True),
        encryption=gcp.storage.BucketEncryptionArgs(default_kms_key_name=kms_key_id),
        logging=logging,
        lifecycle_rules=lifecycle_rules,
        force_destroy=force_destroy,
        labels=labels,
        opts=opts,
    )
